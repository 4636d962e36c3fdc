package websocket

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// The websocket library flushes its buffered writer after every message. To
// send a whole batch with one write to the socket, the gateway places a
// corkConn under it: while the writer goroutine writes a batch the
// connection is corked and collects the bytes, and uncork writes them at
// once, under the write timeout.

// maxRetainedCork bounds the batch buffer a connection keeps between batches.
const maxRetainedCork = 64 << 10

var errNotHijacker = errors.New("websocket: http.ResponseWriter does not support hijacking")

// upgradeWriter is the ResponseWriter handed to the websocket library's
// Accept: its Hijack puts a corkConn under the upgraded connection.
type upgradeWriter struct {
	http.ResponseWriter
	writeTimeout time.Duration
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
	w.cc = &corkConn{Conn: conn, timeout: w.writeTimeout}
	return w.cc, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(w.cc)), nil
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

	mu     sync.Mutex
	corked bool
	buf    []byte
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

// uncork stops collecting and writes what was collected in one call.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	c.corked = false
	buf := c.buf
	c.buf = nil
	c.mu.Unlock()
	if len(buf) == 0 {
		return nil
	}
	_, err := c.write(buf)
	if cap(buf) <= maxRetainedCork {
		c.mu.Lock()
		c.buf = buf[:0]
		c.mu.Unlock()
	}
	return err
}
