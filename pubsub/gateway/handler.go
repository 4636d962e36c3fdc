package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub/internal/logsample"
)

const (
	// protocolVersion is the only Phoenix serializer version served.
	protocolVersion = "2.0.0"
	// subprotocol is the WebSocket subprotocol the Phoenix client offers.
	subprotocol = "phoenix"
	// authTokenPrefix starts the subprotocol that carries the client's auth token.
	authTokenPrefix = "base64url.bearer.phx."
	// tokenParam is the query parameter that carries the token otherwise.
	tokenParam = "token"
)

var errMalformedToken = errors.New("gateway: malformed auth token")

// Handler is the client-facing gateway: an http.Handler that upgrades
// requests to WebSocket connections speaking Phoenix Channels V2 and connects
// them to a Broker. Mount it where clients expect it (Phoenix clients append
// "/websocket" to the socket path, so "/socket/websocket" for "/socket").
//
// A Handler is safe for concurrent use. It owns the goroutines of its
// connections; http.Server.Shutdown does not close upgraded connections:
// call Shutdown or Close on the Handler too.
type Handler struct {
	broker   Broker
	opts     Options
	log      *slog.Logger // Options.Logger, sampled
	hub      hub
	presence presenceHub
	stats    counters
	channels *channelRouter // Options.Channels; nil without any

	joinBucket, publishBucket bucket      // per connection; zero: no limit
	users                     *userLimits // per user; nil: no limit

	ctx    context.Context // ends when the Handler cuts its connections
	cancel context.CancelFunc

	// serving counts the connections registered and not yet done: their
	// ServeHTTP before the upgrade, then their serveConn goroutine. Add is
	// called with mu held while not closing, so Shutdown's Wait follows it.
	serving sync.WaitGroup

	mu        sync.Mutex
	conns     map[*conn]struct{}
	perAddr   map[string]int // connections per client IP, while MaxConnsPerAddr > 0
	nextID    uint64
	closing   bool
	drained   chan struct{} // closed once closing and no connection is left
	isDrained bool
}

// NewHandler returns a Handler serving clients from b. opts may be nil; it is
// copied. NewHandler panics if b is nil.
func NewHandler(b Broker, opts *Options) *Handler {
	if b == nil {
		panic("gateway: NewHandler with a nil Broker")
	}
	o := opts.withDefaults()
	h := &Handler{
		broker:  b,
		opts:    o,
		log:     slog.New(logsample.New(o.Logger.Handler(), logsample.Options{})),
		conns:   make(map[*conn]struct{}),
		perAddr: make(map[string]int),
		drained: make(chan struct{}),

		joinBucket:    makeBucket(o.JoinRate, o.JoinBurst),
		publishBucket: makeBucket(o.PublishRate, o.PublishBurst),
		users:         newUserLimits(makeBucket(o.UserJoinRate, o.UserJoinBurst), makeBucket(o.UserPublishRate, o.UserPublishBurst)),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.hub.init(h)
	h.presence.init(h)
	h.channels = newChannelRouter(o.Channels, o.Logger.Warn)
	return h
}

// ServeHTTP upgrades the request and returns: the connection is served by
// goroutines of the Handler until it ends or the Handler shuts down.
//
// Before upgrading it refuses, with a plain-text body: a Host that
// Options.AllowedHosts does not allow (403), an Origin that
// Options.OriginPatterns does not allow (403), a vsn query parameter
// other than 2.0.0 (400), a malformed auth token (400), a failed
// Options.AuthenticateConn or Options.Authenticate (401 or 403), a client
// IP with Options.MaxConnsPerAddr connections open already (429), and any
// request once the Handler is shutting down (503).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.opts.InsecureSkipVerify && !HostAllowed(h.opts.AllowedHosts, r.Host) {
		h.stats.refusedHost.Add(1)
		h.log.Warn("gateway: refused a request for a host not allowed (DNS rebinding?)", "kind", "host", "remote", r.RemoteAddr, "host", r.Host)
		h.refuseHTTP(w, http.StatusForbidden, "gateway: host "+strconv.Quote(r.Host)+" not allowed: this gateway answers to the names of its allowed hosts only (a protection against DNS rebinding)")
		return
	}
	if origin := r.Header.Get("Origin"); !h.opts.InsecureSkipVerify && !OriginAllowed(h.opts.OriginPatterns, origin, r.Host) {
		h.stats.refusedOrigin.Add(1)
		h.log.Info("gateway: refused a page of an origin not allowed", "kind", "origin", "remote", r.RemoteAddr, "origin", origin)
		h.refuseHTTP(w, http.StatusForbidden, "gateway: origin "+strconv.Quote(origin)+" not allowed")
		return
	}
	if vsn, ok := r.URL.Query()["vsn"]; ok && (len(vsn) != 1 || vsn[0] != protocolVersion) {
		h.refuseHTTP(w, http.StatusBadRequest, "gateway: unsupported vsn "+strings.Join(vsn, ",")+": this gateway speaks Phoenix Channels vsn="+protocolVersion)
		return
	}
	token, err := authToken(r)
	if err != nil {
		h.refuseHTTP(w, http.StatusBadRequest, err.Error())
		return
	}
	ident, err := h.authenticate(r, token)
	if err != nil {
		h.log.Info("gateway: authentication refused", "kind", "auth", "remote", r.RemoteAddr, "err", err)
		switch {
		case errors.Is(err, ErrForbidden):
			h.refuseHTTP(w, http.StatusForbidden, "gateway: forbidden")
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "1")
			h.refuseHTTP(w, http.StatusServiceUnavailable, "gateway: the token cannot be checked now; try again")
		default:
			h.refuseHTTP(w, http.StatusUnauthorized, "gateway: unauthorized")
		}
		return
	}
	ip := clientIP(r.RemoteAddr)
	c, full := h.register(ip)
	if full {
		h.stats.refusedConnLimit.Add(1)
		h.log.Warn("gateway: refused a connection past the connections allowed per address", "kind", "conn-limit", "remote", r.RemoteAddr, "limit", h.opts.MaxConnsPerAddr)
		w.Header().Set("Retry-After", "1")
		h.refuseHTTP(w, http.StatusTooManyRequests, "gateway: too many connections from "+ip)
		return
	}
	if c == nil {
		h.refuseHTTP(w, http.StatusServiceUnavailable, "gateway: gateway shutting down")
		return
	}
	c.identity = ident
	c.remote = r.RemoteAddr
	c.header = r.Header.Clone()
	if h.users != nil && ident.User != "" {
		c.user = h.users.acquire(ident.User)
	}

	uw := &upgradeWriter{ResponseWriter: w, writeTimeout: h.opts.WriteTimeout, queueBytes: h.opts.OutboundQueueBytes}
	ws, err := cws.Accept(uw, r, &cws.AcceptOptions{
		Subprotocols: []string{subprotocol},
		// The origin was checked above, with the patterns matched against
		// the origin's host with and without its port.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has answered the request.
		h.stats.refused.Add(1)
		h.log.Debug("gateway: upgrade failed", "remote", r.RemoteAddr, "err", err)
		c.cancel()
		h.unregister(c)
		h.serving.Done()
		return
	}
	ws.SetReadLimit(h.opts.MaxMessageSize)
	h.stats.connections.Add(1)
	h.stats.accepted.Add(1)
	if !c.attach(ws, uw.cc) {
		_ = uw.cc.Close()
	}
	h.log.Debug("gateway: connection open", "conn", c.id, "remote", r.RemoteAddr)
	// The connection outlives the request: ServeHTTP returns so that the
	// http.Server releases what it keeps per request.
	go h.serveConn(c)
}

// serveConn runs an upgraded connection until it ends. It is the goroutine
// of the connection that register counted in h.serving.
func (h *Handler) serveConn(c *conn) {
	defer h.serving.Done()
	defer h.unregister(c)
	defer h.stats.connections.Add(-1)
	c.serve()
	h.log.Debug("gateway: connection closed", "conn", c.id)
}

func (h *Handler) refuseHTTP(w http.ResponseWriter, status int, msg string) {
	h.stats.refused.Add(1)
	http.Error(w, msg, status)
}

// authenticate runs Options.AuthenticateConn, or Options.Authenticate, on
// the request's token.
func (h *Handler) authenticate(r *http.Request, token string) (Identity, error) {
	switch {
	case h.opts.AuthenticateConn != nil:
		return h.opts.AuthenticateConn(r, token)
	case h.opts.Authenticate != nil:
		return Identity{}, h.opts.Authenticate(r, token)
	}
	return Identity{}, nil
}

// authToken returns the client's token: the one a Phoenix client sends as
// the subprotocol base64url.bearer.phx.<base64 of the token> (authToken),
// or else the query parameter "token" (params: {token}), or "" if there is
// neither. The official client encodes the subprotocol's token with the
// standard base64 alphabet, without padding; both alphabets are accepted.
func authToken(r *http.Request) (string, error) {
	token, err := bearerToken(r)
	if err != nil || token != "" {
		return token, err
	}
	return r.URL.Query().Get(tokenParam), nil
}

// bearerToken returns the token of the subprotocol
// base64url.bearer.phx.<token>, or "" if there is none.
func bearerToken(r *http.Request) (string, error) {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), authTokenPrefix)
			if !ok {
				continue
			}
			enc = strings.TrimRight(enc, "=")
			if b, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
				return string(b), nil
			}
			if b, err := base64.RawStdEncoding.DecodeString(enc); err == nil {
				return string(b), nil
			}
			return "", errMalformedToken
		}
	}
	return "", nil
}

// register creates and tracks a connection from client IP ip, counted in
// h.serving until the caller or its serveConn goroutine calls Done. It
// returns nil if the Handler is shutting down, and reports full, with no
// connection, if ip has Options.MaxConnsPerAddr connections already.
func (h *Handler) register(ip string) (c *conn, full bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, false
	}
	if limit := h.opts.MaxConnsPerAddr; limit > 0 {
		if h.perAddr[ip] >= limit {
			return nil, true
		}
		h.perAddr[ip]++
	}
	h.nextID++
	c = newConn(h, h.nextID)
	c.ip = ip
	h.conns[c] = struct{}{}
	h.serving.Add(1)
	return c, false
}

func (h *Handler) unregister(c *conn) {
	h.mu.Lock()
	if _, ok := h.conns[c]; ok && h.opts.MaxConnsPerAddr > 0 {
		if n := h.perAddr[c.ip] - 1; n > 0 {
			h.perAddr[c.ip] = n
		} else {
			delete(h.perAddr, c.ip)
		}
	}
	delete(h.conns, c)
	h.checkDrainedLocked()
	h.mu.Unlock()
	if c.user != nil {
		h.users.release(c.identity.User, c.user)
		c.user = nil
	}
}

func (h *Handler) checkDrainedLocked() {
	if h.closing && len(h.conns) == 0 && !h.isDrained {
		h.isDrained = true
		close(h.drained)
	}
}

// Shutdown stops accepting connections, closes every connection with
// StatusGoingAway (1001) after writing what is queued for it, and waits for
// their goroutines to end and their topics to be left. If ctx ends first, it
// cuts the remaining connections, aborts their joins and publishes, waits for
// them and returns ctx's error. Shutdown may be called more than once and
// concurrently with Close.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	conns := h.snapshotLocked()
	h.checkDrainedLocked()
	h.mu.Unlock()
	for _, c := range conns {
		c.shutdown(cws.StatusGoingAway, reasonShutdown, true)
	}
	select {
	case <-h.drained:
		h.cancel()
		h.serving.Wait()
		return nil
	case <-ctx.Done():
	}
	h.cancel()
	h.mu.Lock()
	conns = h.snapshotLocked()
	h.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
	<-h.drained
	h.serving.Wait()
	return ctx.Err()
}

// Close is Shutdown with a deadline of Options.WriteTimeout: connections
// that have not finished closing by then are cut.
func (h *Handler) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.WriteTimeout)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func (h *Handler) snapshotLocked() []*conn {
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	return conns
}

// queuedBytes adds up the bytes the connections have queued.
func (h *Handler) queuedBytes() int64 {
	h.mu.Lock()
	conns := h.snapshotLocked()
	h.mu.Unlock()
	var n int64
	for _, c := range conns {
		c.mu.Lock()
		n += int64(c.queued)
		c.mu.Unlock()
	}
	return n
}

// Stats is a snapshot of a Handler's counters. Gauges say how things are now;
// the other fields count since NewHandler.
type Stats struct {
	Connections          int64  `json:"connections"`            // gauge: connections open
	QueuedBytes          int64  `json:"queued_bytes"`           // gauge: bytes waiting in the connections' outbound queues
	Topics               int64  `json:"topics"`                 // gauge: topics with a broker subscription
	Accepted             uint64 `json:"accepted"`               // connections upgraded
	Refused              uint64 `json:"refused"`                // upgrades refused (vsn, auth, host, origin, connections per address, shutting down, not WebSocket)
	RefusedHost          uint64 `json:"refused_host"`           // of which for a Host not allowed (Options.AllowedHosts)
	RefusedOrigin        uint64 `json:"refused_origin"`         // of which for an Origin not allowed (Options.OriginPatterns)
	RefusedConnLimit     uint64 `json:"refused_conn_limit"`     // of which for Options.MaxConnsPerAddr
	Denied               uint64 `json:"denied"`                 // joins, history reads and publishes refused by Options.Authorize
	RateLimitedJoins     uint64 `json:"rate_limited_joins"`     // joins refused by a rate limit
	RateLimitedPublishes uint64 `json:"rate_limited_publishes"` // publishes refused by a rate limit
	FloodClosed          uint64 `json:"flood_closed"`           // connections closed for flooding past their rate limits
	Joins                uint64 `json:"joins"`                  // successful joins, rejoins included
	Publishes            uint64 `json:"publishes"`              // successful publishes by clients
	FramesIn             uint64 `json:"frames_in"`              // messages read from clients
	FramesOut            uint64 `json:"frames_out"`             // messages written to clients
	SlowConsumers        uint64 `json:"slow_consumers"`         // connections closed because the client did not take what was sent to it
	Errors               uint64 `json:"errors"`                 // error replies, failed publishes and undecodable broker messages
	SubscribeErrors      uint64 `json:"subscribe_errors"`       // broker subscriptions that failed
	ChannelErrors        uint64 `json:"channel_errors"`         // phx_error sent because the broker ended a subscription
	Resets               uint64 `json:"resets"`                 // resuming joins answered "reset": history no longer reached back
	Sessions             int64  `json:"sessions"`               // gauge: joins of channel topics (Options.Channels) in progress
	ChannelPushes        uint64 `json:"channel_pushes"`         // messages channels pushed to their sessions
}

type counters struct {
	connections          atomic.Int64
	topics               atomic.Int64
	accepted             atomic.Uint64
	refused              atomic.Uint64
	refusedHost          atomic.Uint64
	refusedOrigin        atomic.Uint64
	refusedConnLimit     atomic.Uint64
	denied               atomic.Uint64
	rateLimitedJoins     atomic.Uint64
	rateLimitedPublishes atomic.Uint64
	floodClosed          atomic.Uint64
	joins                atomic.Uint64
	publishes            atomic.Uint64
	framesIn             atomic.Uint64
	framesOut            atomic.Uint64
	slowConsumers        atomic.Uint64
	errors               atomic.Uint64
	subscribeErrors      atomic.Uint64
	channelErrors        atomic.Uint64
	resets               atomic.Uint64
	sessions             atomic.Int64
	channelPushes        atomic.Uint64
}

// Stats returns the Handler's counters. It may be called at any time.
//
// QueuedBytes visits every connection, taking each one's lock in turn:
// with tens of thousands of connections a call costs a millisecond or so,
// so poll it every second or less often.
func (h *Handler) Stats() Stats {
	s := &h.stats
	return Stats{
		Connections:          s.connections.Load(),
		QueuedBytes:          h.queuedBytes(),
		Topics:               s.topics.Load(),
		Accepted:             s.accepted.Load(),
		Refused:              s.refused.Load(),
		RefusedHost:          s.refusedHost.Load(),
		RefusedOrigin:        s.refusedOrigin.Load(),
		RefusedConnLimit:     s.refusedConnLimit.Load(),
		Denied:               s.denied.Load(),
		RateLimitedJoins:     s.rateLimitedJoins.Load(),
		RateLimitedPublishes: s.rateLimitedPublishes.Load(),
		FloodClosed:          s.floodClosed.Load(),
		Joins:                s.joins.Load(),
		Publishes:            s.publishes.Load(),
		FramesIn:             s.framesIn.Load(),
		FramesOut:            s.framesOut.Load(),
		SlowConsumers:        s.slowConsumers.Load(),
		Errors:               s.errors.Load(),
		SubscribeErrors:      s.subscribeErrors.Load(),
		ChannelErrors:        s.channelErrors.Load(),
		Resets:               s.resets.Load(),
		Sessions:             s.sessions.Load(),
		ChannelPushes:        s.channelPushes.Load(),
	}
}
