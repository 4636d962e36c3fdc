package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Buffer sizes of an outbound link.
const (
	// maxWriteChunk bounds one write syscall, so that WriteTimeout applies
	// to a bounded amount of data even when a long queue goes out at once.
	maxWriteChunk = 256 << 10
	// maxKeptBatch is the largest batch buffer the writer keeps for reuse;
	// a larger one (after a burst) is left to the collector.
	maxKeptBatch = 1 << 20
	// linkReadBufSize is the read buffer of an outbound connection, which
	// only carries pings and a possible late refusal.
	linkReadBufSize = 4 << 10
)

// errAddrChanged ends a connection whose peer moved to another address.
var errAddrChanged = errors.New("transport: peer address changed")

// link is the outbound link to one peer: a bounded queue filled by Send
// and one goroutine (run) that dials, handshakes, writes batches and
// reconnects. While connected, a second goroutine reads the connection to
// notice its end and the peer's pings.
//
// The queue is one byte buffer: Send appends a frame to it (SendMsg encodes
// straight into it) under mu, and the writer swaps it for its own drained
// buffer and writes the whole batch. Two buffers serve a link for its
// lifetime, so a frame costs a copy, not an allocation and a channel
// operation.
type link struct {
	t         *Transport
	name      string
	addr      atomic.Pointer[string]
	maxFrames int
	maxBytes  int
	stats     *peerStats
	wake      chan struct{} // the queue became non-empty; capacity 1
	redial    chan struct{} // address changed; capacity 1
	ctx       context.Context
	cancel    context.CancelFunc

	mu      sync.Mutex
	queue   []byte // complete frames, back to back
	frames  int    // frames in queue
	stopped bool   // cleanup ran: nothing is sent any more

	writes atomic.Uint64 // write syscalls, to observe batching

	// Owned by run.
	batch  []byte // the writer's buffer, swapped with queue
	sealed []byte // the sealed batch, with a session
	br     *bufio.Reader
	sess   *session // the current connection's keys, or nil
}

func newLink(t *Transport, to Peer, stats *peerStats) *link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{
		t:         t,
		name:      to.Name,
		maxFrames: t.cfg.QueueFrames,
		maxBytes:  t.cfg.QueueBytes,
		stats:     stats,
		wake:      make(chan struct{}, 1),
		redial:    make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
	}
	addr := to.Addr
	l.addr.Store(&addr)
	return l
}

// enqueue copies a complete frame to the queue without blocking.
func (l *link) enqueue(frame []byte) error {
	l.mu.Lock()
	if err := l.admitLocked(len(frame)); err != nil {
		l.mu.Unlock()
		return err
	}
	l.queue = append(l.queue, frame...)
	l.pushedLocked()
	l.mu.Unlock()
	return nil
}

// enqueueMsg encodes m as a frame straight into the queue, without
// blocking. A frame over maxFrame is taken back out and refused.
func (l *link) enqueueMsg(m Message, maxFrame int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.admitLocked(0); err != nil {
		return err
	}
	start := len(l.queue)
	l.queue = AppendMessage(l.queue, m)
	size := len(l.queue) - start
	switch {
	case size-4 > maxFrame:
		l.queue = l.queue[:start]
		return fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size-4, maxFrame)
	case len(l.queue) > l.maxBytes:
		l.queue = l.queue[:start]
		l.stats.dropped.Add(1)
		return ErrQueueFull
	}
	l.pushedLocked()
	return nil
}

// admitLocked checks that one more frame of size bytes fits the queue,
// counting a refused frame as dropped.
func (l *link) admitLocked(size int) error {
	switch {
	case l.stopped:
		l.stats.dropped.Add(1)
		return fmt.Errorf("%w: the link to %s was stopped", ErrClosed, l.name)
	case l.frames >= l.maxFrames || len(l.queue)+size > l.maxBytes:
		l.stats.dropped.Add(1)
		return ErrQueueFull
	}
	return nil
}

// pushedLocked counts a frame just appended and wakes the writer when the
// queue was empty (otherwise a wake-up is already pending or the writer
// will see the frame when it takes the queue).
func (l *link) pushedLocked() {
	l.frames++
	if l.frames == 1 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// take swaps the queue for buf (drained by the caller) and returns the
// frames that were queued.
func (l *link) take(buf []byte) (batch []byte, frames int) {
	l.mu.Lock()
	batch, frames = l.queue, l.frames
	l.queue, l.frames = buf[:0], 0
	l.mu.Unlock()
	return batch, frames
}

// setAddr switches the link to a new address: a connection to the old one
// ends after its current batch, a pending reconnect happens at once.
func (l *link) setAddr(addr string) {
	l.addr.Store(&addr)
	select {
	case l.redial <- struct{}{}:
	default:
	}
}

// stop ends the link; run drops what is still queued and returns.
func (l *link) stop() { l.cancel() }

// run owns the link: it connects, serves the connection until it breaks,
// and reconnects with backoff until the link is stopped.
func (l *link) run() {
	t := l.t
	defer t.wg.Done()
	defer l.cleanup()

	var (
		attempt int
		lastErr string
	)
	for l.ctx.Err() == nil {
		addr := *l.addr.Load()
		conn, dr, sess, err := l.connect(addr)
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			attempt++
			delay := backoff(t.cfg.ReconnectMin, t.cfg.ReconnectMax, attempt)
			// Log each new reason loudly and its repetitions quietly.
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				t.log.Warn("transport: cannot connect to peer", "peer", l.name, "addr", addr, "err", err, "attempt", attempt, "retry_in", delay)
			} else {
				t.log.Debug("transport: cannot connect to peer", "peer", l.name, "addr", addr, "err", err, "attempt", attempt, "retry_in", delay)
			}
			if !l.sleep(delay) {
				return
			}
			continue
		}
		lastErr = ""
		l.stats.dials.Add(1)
		l.stats.connected.Store(true)
		t.log.Debug("transport: connected to peer", "peer", l.name, "addr", addr)
		start := time.Now()
		l.sess = sess
		err = l.serve(conn, dr, addr)
		l.sess = nil
		l.stats.connected.Store(false)
		if l.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errAddrChanged) {
			t.log.Info("transport: peer moved, reconnecting", "peer", l.name, "old_addr", addr, "addr", *l.addr.Load())
			attempt = 0
			continue
		}
		// A connection that broke soon after it was made counts as a failed
		// attempt, so a peer that accepts and drops is not redialled in a
		// tight loop.
		if time.Since(start) < t.cfg.ReconnectMax {
			attempt++
		} else {
			attempt = 1
		}
		delay := backoff(t.cfg.ReconnectMin, t.cfg.ReconnectMax, attempt)
		t.log.Warn("transport: connection to peer lost", "peer", l.name, "addr", addr, "err", err, "retry_in", delay)
		if !l.sleep(delay) {
			return
		}
	}
}

// cleanup drops the frames still queued and releases the link's stats.
func (l *link) cleanup() {
	l.mu.Lock()
	l.stopped = true
	dropped := l.frames
	l.queue, l.frames = nil, 0
	l.mu.Unlock()
	l.stats.dropped.Add(uint64(dropped))
	l.stats.connected.Store(false)
	l.t.releaseStats(l.name, l.stats)
}

// sleep waits d, or less if the peer's address changes. It reports false
// if the link was stopped.
func (l *link) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-l.ctx.Done():
		return false
	case <-l.redial:
		return true
	case <-timer.C:
		return true
	}
}

// backoff returns the delay before reconnect attempt n (n >= 1): lo
// doubled per attempt, capped at hi, with the upper half jittered.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n <= 1 {
		d = lo
	} else if n < 32 && lo<<(n-1) > 0 && lo<<(n-1) < hi {
		d = lo << (n - 1)
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// connect dials addr and runs TLS (if configured) and the handshake.
// Stopping the link aborts it. The returned reader feeds l.br; serve arms
// its idle deadline.
func (l *link) connect(addr string) (net.Conn, *deadlineReader, *session, error) {
	t := l.t
	dialer := net.Dialer{Timeout: t.cfg.DialTimeout}
	raw, err := dialer.DialContext(l.ctx, "tcp", addr)
	if err != nil {
		return nil, nil, nil, err
	}
	if t.cfg.wrapConn != nil {
		raw = t.cfg.wrapConn(raw)
	}
	if t.protected && !isLoopback(raw.RemoteAddr()) {
		_ = raw.Close()
		return nil, nil, nil, fmt.Errorf("%w: not dialling %q at non-loopback address %s: this node has no shared secret and no peer TLS, so its links would be neither authenticated nor encrypted: %s",
			ErrProtectedMode, l.name, addrHost(raw.RemoteAddr()), protectedModeFix)
	}
	stopWatch := context.AfterFunc(l.ctx, func() { _ = raw.Close() })
	conn, dr, sess, err := l.handshake(raw, addr)
	stopWatch()
	if err != nil {
		_ = raw.Close()
		return nil, nil, nil, err
	}
	return conn, dr, sess, nil
}

// handshake runs TLS (if configured) and the dialer's handshake on raw,
// all within HandshakeTimeout, and returns the connection to use
// afterwards, the reader under l.br and the session.
func (l *link) handshake(raw net.Conn, addr string) (net.Conn, *deadlineReader, *session, error) {
	t := l.t
	if err := raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	conn := raw
	if t.tlsClient != nil {
		cfg := t.tlsClient
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: TLS with %q: %w", ErrAuth, l.name, err)
		}
		conn = tc
	}
	dr := &deadlineReader{conn: conn}
	if l.br == nil {
		l.br = bufio.NewReaderSize(dr, linkReadBufSize)
	} else {
		l.br.Reset(dr)
	}
	sess, err := t.dialHandshake(conn, l.br, l.name)
	if err != nil && conn != raw && isTLSAlert(err) {
		// TLS 1.3 servers check the client's certificate after the client
		// finished its side: a refusal arrives as an alert on the first
		// read.
		err = fmt.Errorf("%w: TLS with %q: %w", ErrAuth, l.name, err)
	}
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return conn, dr, sess, nil
}

// serve runs one connection: a reader goroutine notices the connection's
// end, and the calling goroutine writes batches until the connection
// breaks, the link stops or the peer's address changes.
func (l *link) serve(conn net.Conn, dr *deadlineReader, addr string) error {
	stopWatch := context.AfterFunc(l.ctx, func() { _ = conn.Close() })
	defer stopWatch()
	defer conn.Close()

	dr.timeout = l.t.cfg.IdleTimeout
	readDone := make(chan struct{})
	var readErr error
	go func() {
		defer close(readDone)
		readErr = l.readLoop()
	}()

	err := l.writeLoop(conn, addr, readDone, &readErr)
	_ = conn.Close()
	<-readDone
	if err == nil {
		err = readErr
	}
	return err
}

// readLoop reads what the listener sends on an outbound connection: pings,
// or a refusal if it rejected the dialer's proof. On a sealed connection
// such a refusal, sent in the clear, does not open and ends the
// connection as an ErrAuth error; the listener logs the reason.
func (l *link) readLoop() error {
	var op *opener
	if l.sess != nil {
		op = l.sess.open
	}
	for {
		typ, body, err := readFrame(l.br, maxHandshakeFrame, op)
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("nothing received for %v: %w", l.t.cfg.IdleTimeout, err)
			}
			return err
		}
		l.stats.received[typ].Add(1)
		l.stats.bytesReceived.Add(uint64(wireSize(len(body), op)))
		switch typ {
		case FramePing:
		case FrameHelloAck:
			var ack helloAck
			if err := ack.DecodeBody(body); err == nil && ack.Err != "" {
				return refusalError(ack.Err, ack.Node)
			}
			return fmt.Errorf("%w: unexpected HelloAck after the handshake", ErrMalformed)
		default:
			return fmt.Errorf("%w: unexpected %v frame on an outbound connection", ErrMalformed, typ)
		}
	}
}

// writeLoop is the link's writer. It waits until frames are queued, takes
// the whole queue at once, and writes it in chunks of at most
// maxWriteChunk, each under WriteTimeout: a loaded link makes one syscall
// per batch, not one per frame, and no lock is held during I/O. Every
// IdleTimeout/3 it adds a Ping, which the listener answers; the reader's
// idle deadline then detects a dead peer. If a write fails, the frames of
// the batch are counted as dropped.
func (l *link) writeLoop(conn net.Conn, addr string, readDone <-chan struct{}, readErr *error) error {
	t := l.t
	ping := time.NewTicker(t.cfg.IdleTimeout / 3)
	defer ping.Stop()
	var (
		counts  [256]uint32 // frames per type in the current batch
		touched []FrameType // types with non-zero counts
	)
	for {
		pingDue := false
		select {
		case <-l.wake:
		case <-ping.C:
			pingDue = true
		case <-readDone:
			return *readErr
		case <-l.ctx.Done():
			return nil
		case <-l.redial:
			if *l.addr.Load() != addr {
				return errAddrChanged
			}
			continue
		}
		batch, frames := l.take(l.batch)
		if pingDue {
			batch = append(batch, pingFrame...)
			frames++
		}
		l.batch = batch
		if len(batch) == 0 {
			continue
		}
		for off := 0; off < len(batch); {
			n := binary.BigEndian.Uint32(batch[off:])
			typ := FrameType(batch[off+4])
			if counts[typ] == 0 {
				touched = append(touched, typ)
			}
			counts[typ]++
			off += 4 + int(n)
		}
		out := batch
		var err error
		if l.sess != nil {
			out, err = l.sess.seal.sealBatch(slices.Grow(l.sealed[:0], len(batch)+frames*sealOverhead), batch)
			l.sealed = out
			if cap(out) > maxKeptBatch {
				l.sealed = nil
			}
		}
		if err == nil {
			err = l.write(conn, out)
		}
		if cap(batch) > maxKeptBatch {
			l.batch = nil
		}
		if err != nil {
			lost := uint64(0)
			for _, typ := range touched {
				if typ != FramePing {
					lost += uint64(counts[typ])
				}
				counts[typ] = 0
			}
			l.stats.dropped.Add(lost)
			if lost > 0 {
				err = fmt.Errorf("%w (%d frames lost)", err, lost)
			}
			return err
		}
		for _, typ := range touched {
			l.stats.sent[typ].Add(uint64(counts[typ]))
			counts[typ] = 0
		}
		touched = touched[:0]
		l.stats.bytesSent.Add(uint64(len(out)))
	}
}

// write writes batch to conn in chunks of at most maxWriteChunk, each
// under a fresh write deadline.
func (l *link) write(conn net.Conn, batch []byte) error {
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), maxWriteChunk)]
		if err := conn.SetWriteDeadline(time.Now().Add(l.t.cfg.WriteTimeout)); err != nil {
			return err
		}
		l.writes.Add(1)
		if _, err := conn.Write(chunk); err != nil {
			return err
		}
		batch = batch[len(chunk):]
	}
	return nil
}
