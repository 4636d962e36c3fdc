package transport

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Peer names a remote node and the address its Transport listens on.
type Peer struct {
	Name string
	Addr string
}

// Handler receives every user frame: types FirstUserFrame and up, whatever
// their value (a handler should ignore types it does not know).
//
// HandleFrame is called on the connection's read goroutine: frames from
// one peer connection arrive in order, one at a time; frames from
// different peers arrive concurrently. body is owned by the handler, which
// may keep it or slices of it. HandleFrame must not block for long: while
// it runs, nothing more is read from that peer.
type Handler interface {
	HandleFrame(from string, typ FrameType, body []byte)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(from string, typ FrameType, body []byte)

// HandleFrame calls f(from, typ, body).
func (f HandlerFunc) HandleFrame(from string, typ FrameType, body []byte) { f(from, typ, body) }

// Read buffers of an accepted connection: a small one while the
// handshake runs, so a crowd of peers that never finish it holds little
// memory, and a larger one once the peer is authenticated.
const (
	handshakeBufSize = 4 << 10
	inboundBufSize   = 64 << 10
)

// Transport links this node to its peers: it listens for their
// connections and keeps one outbound link per peer it sends to.
//
// All methods are safe for concurrent use. Send never blocks and never
// does I/O.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	handler Handler
	ln      net.Listener

	// protected is protected mode: no secret, no TLS, not turned off.
	protected bool
	// tlsClient and tlsServer configure TLS links; nil without TLS.
	tlsClient, tlsServer *tls.Config
	refused              refusedCounters

	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup // accept loop, inbound connections, links
	once   sync.Once

	// links maps peer names to outbound links. It is replaced, never
	// modified, so Send reads it without locking; replacing it takes mu.
	links atomic.Pointer[map[string]*link]

	mu      sync.Mutex
	stats   map[string]*peerStats // guarded by mu
	inbound map[net.Conn]struct{} // accepted connections; guarded by mu
	pending map[string]int        // handshakes in progress per remote IP; guarded by mu
}

// New validates cfg, listens on cfg.ListenAddr and starts accepting peer
// connections. It returns the listen error if the address is unusable.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tlsClient, tlsServer, err := checkTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	if cfg.wrapListener != nil {
		ln = cfg.wrapListener(ln)
	}
	t := &Transport{
		cfg:       cfg,
		log:       cfg.Logger,
		handler:   cfg.Handler,
		ln:        ln,
		protected: len(cfg.Secret) == 0 && cfg.TLS == nil && !cfg.InsecureAllowRemotePeers,
		tlsClient: tlsClient,
		tlsServer: tlsServer,
		done:      make(chan struct{}),
		stats:     make(map[string]*peerStats),
		inbound:   make(map[net.Conn]struct{}),
		pending:   make(map[string]int),
	}
	switch {
	case t.protected && !isLoopback(ln.Addr()):
		t.log.Warn("transport: protected mode: listening on a non-loopback address, but peers are accepted from loopback only",
			"addr", ln.Addr().String(), "fix", protectedModeFix)
	case len(cfg.Secret) == 0 && cfg.TLS == nil && !isLoopback(ln.Addr()):
		t.log.Warn("transport: protected mode is off: peer links on a non-loopback address are neither authenticated nor encrypted",
			"addr", ln.Addr().String())
	}
	t.links.Store(&map[string]*link{})
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the Transport listens on, as host:port.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Send enqueues frame, built by AppendFrame or AppendMessage, for peer to.
// It never blocks and never does I/O. The frame is copied into the link's
// queue: the caller may reuse it once Send returns, and may pass it to
// Send for other peers (encode once, send to many).
//
// The outbound link to to.Name is created on first use and (re)dialled in
// the background; frames queued meanwhile are sent once it connects. If
// to.Addr differs from the link's address, the link switches to the new
// address. Frames to one peer are written in Send order; frames lost with
// a broken connection are counted as dropped, not resent.
//
// Errors: ErrClosed, ErrQueueFull (the frame is counted as dropped),
// ErrFrameTooLarge, ErrInvalidPeer, and ErrMalformed for a frame with an
// inconsistent header or a link-internal type.
func (t *Transport) Send(to Peer, frame []byte) error {
	if err := checkSendFrame(frame, t.cfg.MaxFrameSize); err != nil {
		return err
	}
	l, err := t.linkFor(to)
	if err != nil {
		return err
	}
	return l.enqueue(frame)
}

// SendMsg encodes m as a frame straight into the queue of the link to peer
// to, without an intermediate buffer; otherwise it is Send.
func (t *Transport) SendMsg(to Peer, m Message) error {
	if m.FrameType() < FirstUserFrame {
		return fmt.Errorf("%w: %v is a link-internal frame type", ErrMalformed, m.FrameType())
	}
	l, err := t.linkFor(to)
	if err != nil {
		return err
	}
	return l.enqueueMsg(m, t.cfg.MaxFrameSize)
}

// linkFor returns the outbound link to peer to, creating it on first use
// and switching it to to.Addr if the peer moved.
func (t *Transport) linkFor(to Peer) (*link, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if to.Name == "" || to.Addr == "" {
		return nil, fmt.Errorf("%w: %q at %q", ErrInvalidPeer, to.Name, to.Addr)
	}
	l := (*t.links.Load())[to.Name]
	if l == nil {
		return t.newLink(to)
	}
	if *l.addr.Load() != to.Addr {
		l.setAddr(to.Addr)
	}
	return l, nil
}

// newLink returns the link to peer to, creating and starting it if it does
// not exist yet.
func (t *Transport) newLink(to Peer) (*link, error) {
	if to.Name == t.cfg.NodeName {
		return nil, fmt.Errorf("%w: %q is this node", ErrInvalidPeer, to.Name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, ErrClosed
	}
	old := *t.links.Load()
	if l := old[to.Name]; l != nil {
		return l, nil
	}
	l := newLink(t, to, t.acquireStatsLocked(to.Name))
	links := maps.Clone(old)
	links[to.Name] = l
	t.links.Store(&links)
	t.wg.Add(1)
	go l.run()
	return l, nil
}

// ClosePeer stops the outbound link to the named peer, if any, and drops
// the frames still queued on it (counted as dropped). It does not wait for
// the link's goroutines and leaves connections the peer opened to this
// node alone. A later Send to the peer creates a new link.
func (t *Transport) ClosePeer(name string) {
	t.mu.Lock()
	old := *t.links.Load()
	l := old[name]
	if l != nil {
		links := maps.Clone(old)
		delete(links, name)
		t.links.Store(&links)
	}
	t.mu.Unlock()
	if l != nil {
		l.stop()
	}
}

// Close closes the listener, every outbound link and every accepted
// connection, and waits for all of the Transport's goroutines to return,
// including HandleFrame calls in progress. Frames still queued are
// dropped. Close is idempotent; later calls wait for the first to finish
// and return nil.
func (t *Transport) Close() error {
	t.once.Do(func() {
		t.mu.Lock()
		t.closed.Store(true)
		links := *t.links.Load()
		t.links.Store(&map[string]*link{})
		conns := make([]net.Conn, 0, len(t.inbound))
		for c := range t.inbound {
			conns = append(conns, c)
		}
		t.mu.Unlock()

		close(t.done)
		_ = t.ln.Close()
		for _, l := range links {
			l.stop()
		}
		for _, c := range conns {
			_ = c.Close()
		}
		t.wg.Wait()
	})
	return nil
}

// acceptLoop accepts connections until the listener is closed.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("transport: accept failed", "kind", "accept", "err", err, "retry_in", delay)
			timer := time.NewTimer(delay)
			select {
			case <-t.done:
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		delay = 0
		host := addrHost(conn.RemoteAddr())
		if !t.trackInbound(conn, host) {
			_ = conn.Close()
			continue
		}
		go t.serveInbound(conn, host)
	}
}

// trackInbound registers an accepted connection from host (and its
// goroutine with wg) as a pending handshake, or reports false after Close,
// when MaxInbound are open, or when host has MaxPendingPerAddr handshakes
// pending already.
func (t *Transport) trackInbound(conn net.Conn, host string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return false
	}
	if len(t.inbound) >= t.cfg.MaxInbound {
		t.refused.maxInbound.Add(1)
		t.log.Warn("transport: too many inbound connections, refusing one", "kind", "max-inbound", "remote", conn.RemoteAddr().String(), "max", t.cfg.MaxInbound)
		return false
	}
	if t.pending[host] >= t.cfg.MaxPendingPerAddr {
		t.refused.pendingPerAddr.Add(1)
		t.log.Warn("transport: too many unfinished handshakes from one address, refusing one", "kind", "max-pending/"+host,
			"remote", conn.RemoteAddr().String(), "max", t.cfg.MaxPendingPerAddr)
		return false
	}
	t.pending[host]++
	t.inbound[conn] = struct{}{}
	t.wg.Add(1)
	return true
}

// handshakeDone ends the pending handshake of a connection from host.
func (t *Transport) handshakeDone(host string) {
	t.mu.Lock()
	if t.pending[host]--; t.pending[host] <= 0 {
		delete(t.pending, host)
	}
	t.mu.Unlock()
}

func (t *Transport) untrackInbound(conn net.Conn) {
	t.mu.Lock()
	delete(t.inbound, conn)
	t.mu.Unlock()
}

// serveInbound authenticates an accepted connection from host and then
// reads frames from it until it fails or the Transport closes.
func (t *Transport) serveInbound(conn net.Conn, host string) {
	defer t.wg.Done()
	defer t.untrackInbound(conn)
	defer func() { _ = conn.Close() }()

	remote := conn.RemoteAddr().String()
	conn, br, name, sess, err := t.handshakeInbound(conn)
	t.handshakeDone(host)
	if err != nil {
		if !t.closed.Load() {
			switch {
			case errors.Is(err, ErrProtectedMode):
				t.refused.protectedMode.Add(1)
			default:
				t.refused.handshake.Add(1)
			}
			t.log.Warn("transport: refused inbound connection", "kind", refusalKind(err, name), "remote", remote, "peer", name, "err", err)
		}
		return
	}
	// The handshake's small buffer may hold the first frames: the large
	// buffer takes them over, then reads from the connection.
	var r io.Reader = &deadlineReader{conn: conn, timeout: t.cfg.IdleTimeout}
	if br.Buffered() > 0 {
		r = io.MultiReader(bufferedReader(br), r)
	}
	br = bufio.NewReaderSize(r, inboundBufSize)
	stats := t.acquireStats(name)
	defer t.releaseStats(name, stats)
	t.log.Debug("transport: inbound connection from peer", "peer", name, "remote", remote)

	err = t.readInbound(conn, br, name, stats, sess)
	if t.closed.Load() {
		return
	}
	switch {
	case err == io.EOF || errors.Is(err, net.ErrClosed):
		t.log.Debug("transport: inbound connection closed", "peer", name, "remote", remote)
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrMalformed), errors.Is(err, ErrAuth):
		t.refused.violations.Add(1)
		t.log.Error("transport: closing inbound connection on a protocol violation", "kind", "violation", "peer", name, "remote", remote, "err", err)
	default:
		t.log.Warn("transport: inbound connection lost", "kind", "lost", "peer", name, "remote", remote, "err", err)
	}
}

// refusalKind is the "kind" attribute of a refused inbound connection's
// log line: one per reason and claimed peer name, so that a sampling
// handler that holds back a flood of garbage does not hide a misconfigured
// peer.
func refusalKind(err error, peer string) string {
	for _, sentinel := range refusalSentinels {
		if errors.Is(err, sentinel) {
			return sentinel.Error() + "/" + peer
		}
	}
	return "refused/" + peer
}

// handshakeInbound runs TLS (if configured) and the handshake on an
// accepted connection, all within HandshakeTimeout, and returns the
// connection to use afterwards, its handshake reader and the peer's name
// and session.
func (t *Transport) handshakeInbound(raw net.Conn) (net.Conn, *bufio.Reader, string, *session, error) {
	conn := raw
	if err := conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return conn, nil, "", nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if t.tlsServer != nil {
		tc := tls.Server(raw, t.tlsServer)
		if err := tc.Handshake(); err != nil {
			return conn, nil, "", nil, fmt.Errorf("%w: TLS: %w", ErrAuth, err)
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, handshakeBufSize)
	name, sess, err := t.acceptHandshake(conn, br)
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	return conn, br, name, sess, err
}

// bufferedReader returns a reader of a copy of the bytes buffered in br,
// which the caller is about to drop.
func bufferedReader(br *bufio.Reader) io.Reader {
	b, _ := br.Peek(br.Buffered())
	return bytes.NewReader(bytes.Clone(b))
}

// readInbound reads the frames of an authenticated inbound connection,
// passes user frames to the handler and answers pings. With a session,
// frames are sealed both ways.
func (t *Transport) readInbound(conn net.Conn, br *bufio.Reader, name string, stats *peerStats, sess *session) error {
	maxFrame := t.cfg.MaxFrameSize
	var (
		op   *opener
		pong = pingFrame
		buf  []byte // pong's buffer once sealed
	)
	if sess != nil {
		op = sess.open
	}
	for {
		typ, body, err := readFrame(br, maxFrame, op)
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("nothing received for %v: %w", t.cfg.IdleTimeout, err)
			}
			return err
		}
		stats.received[typ].Add(1)
		stats.bytesReceived.Add(uint64(wireSize(len(body), op)))
		switch {
		case typ >= FirstUserFrame:
			t.handler.HandleFrame(name, typ, body)
		case typ == FramePing:
			if len(body) != 0 {
				return fmt.Errorf("%w: Ping with a %d-byte body", ErrMalformed, len(body))
			}
			// Answer so the dialer can tell the connection is alive.
			if sess != nil {
				if buf, err = sess.seal.sealFrame(buf[:0], pingFrame); err != nil {
					return err
				}
				pong = buf
			}
			if err := conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
				return err
			}
			if _, err := conn.Write(pong); err != nil {
				return err
			}
			stats.sent[FramePing].Add(1)
			stats.bytesSent.Add(uint64(len(pong)))
		default:
			return fmt.Errorf("%w: unexpected %v frame after the handshake", ErrMalformed, typ)
		}
	}
}

// deadlineReader refreshes the read deadline of conn before reads, at
// most every timeout/4, so an idle connection fails after timeout without
// a deadline call per frame. A zero timeout leaves deadlines alone.
type deadlineReader struct {
	conn    net.Conn
	timeout time.Duration
	last    time.Time
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	if r.timeout > 0 {
		now := time.Now()
		if now.Sub(r.last) > r.timeout/4 {
			if err := r.conn.SetReadDeadline(now.Add(r.timeout)); err != nil {
				return 0, err
			}
			r.last = now
		}
	}
	return r.conn.Read(p)
}
