package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// The websocket library flushes its buffered writer after every message. To
// send a whole batch with one write to the socket, the gateway places a
// corkConn under it: while the writer goroutine writes a batch the
// connection is corked and collects the bytes, and uncork writes them at
// once, under the write timeout.

const (
	// maxRetainedCork bounds the batch buffer a connection keeps between batches.
	maxRetainedCork = 64 << 10
	// maxIdleCork bounds the batch buffer kept once the writer goes idle.
	maxIdleCork = 1024
	// writeBufferSize is the size of the websocket library's write buffer.
	// Batches are collected by corkConn, so the buffer only has to hold a
	// whole control frame (a pong or a close message: a 2-byte header and at
	// most 125 bytes of payload), which then reaches the socket in one
	// write even when the connection is not corked.
	writeBufferSize = 256
	// maxControlFrame is the largest control frame the gateway sends.
	maxControlFrame = 2 + 125
	// readBufferSize is the size of the websocket library's read buffer: a
	// frame header and a small message are read with one call to the
	// socket; larger payloads are read into the message without it. An idle
	// connection keeps this buffer, so it is small.
	readBufferSize = 512
	// fallbackSendBuffer bounds the socket send buffer of a connection whose
	// send queue cannot be measured (see corkConn.unacked), so that a client
	// that stops reading blocks the writer early and the outbound queue
	// bound applies.
	fallbackSendBuffer = 64 << 10
)

// A control frame must fit in the write buffer; see writeBufferSize.
const _ = uint(writeBufferSize - maxControlFrame)

var errNotHijacker = errors.New("gateway: http.ResponseWriter does not support hijacking")

// upgradeWriter is the ResponseWriter handed to the websocket library's
// Accept: its Hijack puts a corkConn under the upgraded connection and gives
// it small buffers of its own, so that none of net/http's per-request
// buffers stays reachable once ServeHTTP returns.
type upgradeWriter struct {
	http.ResponseWriter
	writeTimeout time.Duration
	queueBytes   int // Options.OutboundQueueBytes
	cc           *corkConn
}

// Hijack implements http.Hijacker.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			return nil, nil, errNotHijacker
		}
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	w.cc = newCorkConn(conn, w.writeTimeout, w.queueBytes)
	return w.cc, bufio.NewReadWriter(newConnReader(w.cc, brw.Reader), bufio.NewWriterSize(w.cc, writeBufferSize)), nil
}

// newConnReader returns a readBufferSize reader of conn that first yields
// what br had read past the request (a client may send frames right behind
// its upgrade request). Those bytes are already in the returned reader's
// buffer, as the websocket library expects of a hijacked reader.
func newConnReader(conn net.Conn, br *bufio.Reader) *bufio.Reader {
	n := br.Buffered()
	if n == 0 {
		return bufio.NewReaderSize(conn, readBufferSize)
	}
	pending, _ := br.Peek(n)
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(pending)), conn), max(readBufferSize, n))
	// The first read of the MultiReader returns all of pending and does not
	// touch conn.
	_, _ = r.Peek(n)
	return r
}

// Unwrap lets http.ResponseController reach the original ResponseWriter.
func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// corkConn is the upgraded net.Conn. Writes pass straight through, under the
// write timeout, except while corked, when they are collected in order.
//
// The websocket library serializes its own writes, so at most one Write runs
// at a time, but one (a pong, a close message) may run while uncork writes a
// batch: both carry whole frames, and the socket writes each call whole, so
// they may go out in either order. Only the writer goroutine corks and uncorks.
type corkConn struct {
	net.Conn
	timeout time.Duration
	// sock is the socket under Conn, if its send queue can be measured.
	sock syscall.RawConn

	mu     sync.Mutex
	corked bool
	buf    []byte
}

// newCorkConn returns a corkConn over conn. If the send queue of the socket
// under conn cannot be measured, its send buffer is made no larger than
// queueBytes (and at most fallbackSendBuffer), so that the kernel does not
// hold megabytes for a client that stopped reading.
func newCorkConn(conn net.Conn, timeout time.Duration, queueBytes int) *corkConn {
	c := &corkConn{Conn: conn, timeout: timeout}
	sock := conn
	if u, ok := sock.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		sock = u.NetConn()
	}
	if sc, ok := sock.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if _, ok := unsentBytes(rc); ok {
				c.sock = rc
				return c
			}
		}
	}
	if b, ok := sock.(interface{ SetWriteBuffer(int) error }); ok {
		_ = b.SetWriteBuffer(min(queueBytes, fallbackSendBuffer))
	}
	return c
}

// unacked reports the bytes written to the socket that the client has not
// acknowledged yet, if the platform can tell.
func (c *corkConn) unacked() (int, bool) {
	if c.sock == nil {
		return 0, false
	}
	return unsentBytes(c.sock)
}

// Write implements net.Conn.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.corked {
		c.buf = append(c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.write(p)
}

func (c *corkConn) write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// cork starts collecting writes.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork stops collecting and writes what was collected in one call. It
// returns the number of bytes written.
func (c *corkConn) uncork() (int, error) {
	c.mu.Lock()
	c.corked = false
	buf := c.buf
	c.buf = nil
	c.mu.Unlock()
	if len(buf) == 0 {
		return 0, nil
	}
	n, err := c.write(buf)
	if cap(buf) <= maxRetainedCork {
		c.mu.Lock()
		c.buf = buf[:0]
		c.mu.Unlock()
	}
	return n, err
}

// trim drops the batch buffer if its capacity exceeds n. Only the writer
// goroutine calls it, between batches.
func (c *corkConn) trim(n int) {
	c.mu.Lock()
	if cap(c.buf) > n {
		c.buf = nil
	}
	c.mu.Unlock()
}
