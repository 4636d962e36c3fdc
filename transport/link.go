package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"
)

// Buffer sizes of an outbound link.
const (
	// writeBufSize is the link's write buffer: frames are copied into it and
	// it is written with one syscall when full or at the end of a batch.
	writeBufSize = 64 << 10
	// maxBatchBytes ends a batch (flush and count) even if more frames are
	// queued, so counters and deadlines keep up under sustained load.
	maxBatchBytes = 4 * writeBufSize
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
type link struct {
	t        *Transport
	name     string
	addr     atomic.Pointer[string]
	queue    chan []byte
	queued   atomic.Int64 // bytes in queue
	maxBytes int64
	stats    *peerStats
	redial   chan struct{} // address changed; capacity 1
	ctx      context.Context
	cancel   context.CancelFunc

	writes atomic.Uint64 // write syscalls, to observe batching

	// Owned by run.
	bw *bufio.Writer
	br *bufio.Reader
}

func newLink(t *Transport, to Peer, stats *peerStats) *link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{
		t:        t,
		name:     to.Name,
		queue:    make(chan []byte, t.cfg.QueueFrames),
		maxBytes: int64(t.cfg.QueueBytes),
		stats:    stats,
		redial:   make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
	}
	addr := to.Addr
	l.addr.Store(&addr)
	return l
}

// enqueue adds a frame to the queue without blocking.
func (l *link) enqueue(frame []byte) error {
	n := int64(len(frame))
	if l.queued.Add(n) > l.maxBytes {
		l.queued.Add(-n)
		l.stats.dropped.Add(1)
		return ErrQueueFull
	}
	select {
	case l.queue <- frame:
		return nil
	default:
		l.queued.Add(-n)
		l.stats.dropped.Add(1)
		return ErrQueueFull
	}
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
		conn, dr, err := l.connect(addr)
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
		err = l.serve(conn, dr, addr)
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
	dropped := uint64(0)
	for {
		select {
		case f := <-l.queue:
			l.queued.Add(-int64(len(f)))
			dropped++
			continue
		default:
		}
		break
	}
	l.stats.dropped.Add(dropped)
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

// connect dials addr and runs the handshake. Stopping the link aborts it.
// The returned reader feeds l.br; serve arms its idle deadline.
func (l *link) connect(addr string) (net.Conn, *deadlineReader, error) {
	t := l.t
	dialer := net.Dialer{Timeout: t.cfg.DialTimeout}
	conn, err := dialer.DialContext(l.ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stopWatch := context.AfterFunc(l.ctx, func() { _ = conn.Close() })
	dr := &deadlineReader{conn: conn}
	if l.br == nil {
		l.br = bufio.NewReaderSize(dr, linkReadBufSize)
	} else {
		l.br.Reset(dr)
	}
	err = t.dialHandshake(conn, l.br, l.name)
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	stopWatch()
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, dr, nil
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
// or a refusal if it rejected the dialer's proof.
func (l *link) readLoop() error {
	for {
		typ, body, err := readFrame(l.br, maxHandshakeFrame)
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("nothing received for %v: %w", l.t.cfg.IdleTimeout, err)
			}
			return err
		}
		l.stats.received[typ].Add(1)
		l.stats.bytesReceived.Add(uint64(frameHeaderSize + len(body)))
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

// countingWriter counts the writes (syscalls) made to an outbound
// connection.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.w.Write(p)
}

// writeLoop is the link's writer. It blocks for the first queued frame,
// then moves every frame already queued (up to maxBatchBytes) into the
// write buffer without blocking, and flushes once per batch under a write
// deadline. Every IdleTimeout/3 it adds a Ping, which the listener
// answers; the reader's idle deadline then detects a dead peer. If a write
// fails, the frames of the batch are counted as dropped.
func (l *link) writeLoop(conn net.Conn, addr string, readDone <-chan struct{}, readErr *error) error {
	t := l.t
	if l.bw == nil {
		l.bw = bufio.NewWriterSize(nil, writeBufSize)
	}
	bw := l.bw
	bw.Reset(countingWriter{w: conn, n: &l.writes})
	ping := time.NewTicker(t.cfg.IdleTimeout / 3)
	defer ping.Stop()

	var (
		counts  [256]uint32 // frames per type in the current batch
		touched []FrameType // types with non-zero counts
	)
	for {
		var (
			f         []byte
			dequeued  int64
			batchSize int
		)
		select {
		case f = <-l.queue:
			dequeued = int64(len(f))
		case <-ping.C:
			f = pingFrame
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
		if err := conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
			return err
		}
		var err error
		for {
			typ := FrameType(f[4])
			if counts[typ] == 0 {
				touched = append(touched, typ)
			}
			counts[typ]++
			batchSize += len(f)
			if _, err = bw.Write(f); err != nil || batchSize >= maxBatchBytes {
				break
			}
			select {
			case f = <-l.queue:
				dequeued += int64(len(f))
				continue
			default:
			}
			break
		}
		l.queued.Add(-dequeued)
		if err == nil {
			err = bw.Flush()
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
		l.stats.bytesSent.Add(uint64(batchSize))
	}
}
