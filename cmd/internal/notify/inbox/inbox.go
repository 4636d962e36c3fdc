package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// Topic is the Phoenix topic of the inbox; "inbox:{user}" (TopicPrefix and
// the user's id) is the same inbox, named.
const (
	Topic       = "inbox"
	TopicPrefix = "inbox:"
)

// Defaults of the Options fields.
const (
	DefaultMaxTopics     = 1000
	DefaultMaxReplay     = 500
	DefaultOnlineTTL     = 90 * time.Second
	DefaultOnlineRefresh = 30 * time.Second
	DefaultDBTimeout     = 5 * time.Second
)

// Reasons of the error replies the inbox sends (besides the gateway's own).
const (
	ReasonUnauthorized   = "unauthorized"
	ReasonForbidden      = "forbidden"
	ReasonTooManyTopics  = "too many topics"
	ReasonInvalidPayload = "invalid payload"
	ReasonNotFound       = "not found"
	ReasonInvalid        = "invalid request"
	ReasonUnavailable    = "unavailable"
	ReasonUnknownEvent   = "unknown event"
	ReasonShuttingDown   = "server shutting down"
	ReasonSubscribe      = "subscribe failed"
)

// ErrClosed ends the sessions of a Channel that is closing (phx_error:
// Phoenix clients join again, on this gateway or another).
var ErrClosed = errors.New("inbox: channel closed")

// Service is what the inbox needs of the notification service;
// *notify.Service implements it. Its methods may be called concurrently.
type Service interface {
	Subscriptions(ctx context.Context, user string) ([]notify.TopicState, error)
	MarkRead(ctx context.Context, user, topic string, seq uint64) (notify.TopicState, error)
	MarkAllRead(ctx context.Context, user string) error
	SetOnline(ctx context.Context, user, node string, until time.Time) error
	ClearOnline(ctx context.Context, user, node string) error
}

// Options configures a Channel. A nil *Options is valid; zero fields take
// their defaults. New copies the Options.
type Options struct {
	// NodeName names this node in the online markers (Service.SetOnline).
	// Default: the pubsub node's name.
	NodeName string

	// MaxTopics bounds the topics one inbox session follows: a user who
	// subscribes to more is refused with the reason "too many topics", and
	// a live session that would go past it by a new subscription ends with
	// phx_error (the client's rejoin is then refused the same way).
	// Default 1000.
	MaxTopics int

	// MaxReplay bounds the notifications of one topic a rejoining client
	// is sent from its last position; a client further behind gets a
	// "reset" event for that topic instead (it reads the history over
	// HTTP). It keeps a reconnect after a long absence from flooding the
	// connection. Default 500.
	MaxReplay uint64

	// Buffer is the buffer of each pubsub subscription of a session
	// (pubsub.WithBuffer). A session whose subscription overflows ends
	// with phx_error, and its client rejoins from its positions. Default:
	// the node's Config.SubscriptionBuffer.
	Buffer int

	// OnlineTTL is how long an online marker lasts unless renewed, and
	// OnlineRefresh how often the markers of the users with a live session
	// are renewed. Defaults 90 s and 30 s.
	OnlineTTL     time.Duration
	OnlineRefresh time.Duration

	// DBTimeout bounds each call to the Service that no client waits for
	// (online markers, the resynchronisation after a mark-all). Default 5 s.
	DBTimeout time.Duration

	// Clock is the time. Nil: time.Now.
	Clock func() time.Time

	// Logger receives the channel's logs. Nil discards them.
	Logger *slog.Logger
}

func (o *Options) withDefaults(node *pubsub.Node) Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.NodeName == "" {
		c.NodeName = node.Name()
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	if c.MaxReplay == 0 {
		c.MaxReplay = DefaultMaxReplay
	}
	if c.OnlineTTL <= 0 {
		c.OnlineTTL = DefaultOnlineTTL
	}
	if c.OnlineRefresh <= 0 {
		c.OnlineRefresh = DefaultOnlineRefresh
	}
	if c.DBTimeout <= 0 {
		c.DBTimeout = DefaultDBTimeout
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Channel is the inbox: a gateway.Channel serving the topics "inbox" and
// "inbox:{user}" (see Routes). It is safe for concurrent use. Close it
// when the gateway stops serving it.
type Channel struct {
	node     *pubsub.Node
	svc      Service
	opts     Options
	log      *slog.Logger
	presence *presence

	// wg counts the goroutines of sessions: their cleanups and their
	// control workers.
	wg sync.WaitGroup

	mu       sync.Mutex
	closing  bool
	sessions map[*session]struct{}

	closeOnce sync.Once
	stats     counters
}

type counters struct {
	sessions      atomic.Int64
	joins         atomic.Uint64
	refused       atomic.Uint64
	notifications atomic.Uint64
	resets        atomic.Uint64
	control       atomic.Uint64
	reads         atomic.Uint64
}

// Stats is a snapshot of a Channel's counters.
type Stats struct {
	Sessions      int64  `json:"sessions"`      // gauge: live inbox sessions
	Online        int    `json:"online"`        // gauge: users with a live session here
	Joins         uint64 `json:"joins"`         // joins accepted
	Refused       uint64 `json:"refused"`       // joins refused
	Notifications uint64 `json:"notifications"` // notification events pushed
	Resets        uint64 `json:"resets"`        // reset events pushed: a position no longer served
	Control       uint64 `json:"control"`       // control events received
	Reads         uint64 `json:"reads"`         // read and read_all events handled
}

// Stats returns the Channel's counters.
func (c *Channel) Stats() Stats {
	return Stats{
		Sessions:      c.stats.sessions.Load(),
		Online:        c.presence.online(),
		Joins:         c.stats.joins.Load(),
		Refused:       c.stats.refused.Load(),
		Notifications: c.stats.notifications.Load(),
		Resets:        c.stats.resets.Load(),
		Control:       c.stats.control.Load(),
		Reads:         c.stats.reads.Load(),
	}
}

// New returns the inbox channel of node and svc. opts may be nil. New
// panics if node or svc is nil. The Channel does not own node or svc.
func New(node *pubsub.Node, svc Service, opts *Options) *Channel {
	if node == nil || svc == nil {
		panic("inbox: New with a nil node or service")
	}
	o := opts.withDefaults(node)
	c := &Channel{
		node:     node,
		svc:      svc,
		opts:     o,
		log:      o.Logger,
		sessions: make(map[*session]struct{}),
	}
	c.presence = newPresence(svc, o)
	return c
}

// Routes returns the gateway routes of the channel, for
// gateway.Options.Channels: "inbox" and "inbox:*".
func (c *Channel) Routes() map[string]gateway.Channel {
	return map[string]gateway.Channel{Topic: c, TopicPrefix + "*": c}
}

// Close ends every session (phx_error with ErrClosed, so clients rejoin
// elsewhere), waits for their cleanup, clears the online markers this node
// holds and stops renewing them. Joins after Close are refused with the
// reason "server shutting down". Close is idempotent.
func (c *Channel) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		live := make([]*session, 0, len(c.sessions))
		for s := range c.sessions {
			live = append(live, s)
		}
		c.mu.Unlock()
		for _, s := range live {
			s.gs.End(ErrClosed)
		}
		c.wg.Wait()
		c.presence.close()
	})
	return nil
}

// AuthenticateConn returns a gateway.Options.AuthenticateConn that
// authenticates connections with authenticate (Service.Authenticate of
// package notify): a connection without a token is anonymous (it may
// join the open topics the operator allows, not the inbox); one with a
// token the service refuses is refused (HTTP 401), as is one while the
// database cannot be reached.
func AuthenticateConn(authenticate func(ctx context.Context, token string) (string, error)) func(r *http.Request, token string) (gateway.Identity, error) {
	return func(r *http.Request, token string) (gateway.Identity, error) {
		if token == "" {
			return gateway.Identity{}, nil
		}
		user, err := authenticate(r.Context(), token)
		if err != nil {
			return gateway.Identity{}, err
		}
		return gateway.Identity{User: user}, nil
	}
}

// Join implements gateway.Channel: it authorizes the join, follows every
// topic the user subscribes to and their control topic, and replies with
// the inbox.
func (c *Channel) Join(ctx context.Context, gs *gateway.Session, topic string, payload json.RawMessage) (json.RawMessage, error) {
	reply, err := c.join(ctx, gs, topic, payload)
	if err != nil {
		c.stats.refused.Add(1)
		return nil, err
	}
	c.stats.joins.Add(1)
	return reply, nil
}

func (c *Channel) join(ctx context.Context, gs *gateway.Session, topic string, payload json.RawMessage) (json.RawMessage, error) {
	user := gs.Identity().User
	if user == "" {
		return nil, gateway.Reason(ReasonUnauthorized)
	}
	if topic != Topic && topic != TopicPrefix+user {
		return nil, gateway.Reason(ReasonForbidden)
	}
	positions, err := parsePositions(payload)
	if err != nil {
		return nil, &gateway.ReasonError{Reason: ReasonInvalidPayload + ": " + err.Error(), Err: err}
	}
	s := newSession(c, gs, user)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, gateway.Reason(ReasonShuttingDown)
	}
	c.sessions[s] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	// The session's cleanup runs when the join ends, however it ends
	// (this join refused included).
	context.AfterFunc(gs.Context(), func() {
		defer c.wg.Done()
		s.close()
		c.mu.Lock()
		delete(c.sessions, s)
		c.mu.Unlock()
	})
	return s.start(ctx, positions)
}

// position is a client's last position in one topic.
type position struct {
	epoch uint64
	seq   uint64
}

// parsePositions reads the join payload {"positions":{"TOPIC":{"epoch":"E","seq":N}}};
// epoch and seq may be JSON numbers or strings (epochs exceed JavaScript's
// exact integers), epoch may be absent (the current epoch).
func parsePositions(payload json.RawMessage) (map[string]position, error) {
	if len(payload) == 0 || string(payload) == "null" {
		return nil, nil
	}
	var p struct {
		Positions map[string]struct {
			Epoch json.RawMessage `json:"epoch"`
			Seq   json.RawMessage `json:"seq"`
		} `json:"positions"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, errors.New("the join payload must be {\"positions\":{\"TOPIC\":{\"epoch\":\"E\",\"seq\":N}}}")
	}
	out := make(map[string]position, len(p.Positions))
	for name, raw := range p.Positions {
		var pos position
		var ok bool
		if pos.seq, ok = jsonUint(raw.Seq, false); !ok {
			return nil, fmt.Errorf("position of %q: seq must be an unsigned integer", name)
		}
		if pos.epoch, ok = jsonUint(raw.Epoch, true); !ok {
			return nil, fmt.Errorf("position of %q: epoch must be an unsigned integer or a string of one", name)
		}
		out[name] = pos
	}
	return out, nil
}

// jsonUint reads an unsigned integer written as a JSON number or string.
// An absent or null value is 0 if optional.
func jsonUint(raw json.RawMessage, optional bool) (uint64, bool) {
	s := string(raw)
	if s == "" || s == "null" {
		return 0, optional
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// reasonOf turns an error of the Service into the reason of an error reply.
func reasonOf(err error) error {
	switch {
	case errors.Is(err, notify.ErrNotFound):
		return &gateway.ReasonError{Reason: ReasonNotFound, Err: err}
	case errors.Is(err, notify.ErrInvalid):
		return &gateway.ReasonError{Reason: ReasonInvalid, Err: err}
	case errors.Is(err, notify.ErrForbidden):
		return &gateway.ReasonError{Reason: ReasonForbidden, Err: err}
	case errors.Is(err, notify.ErrUnauthorized):
		return &gateway.ReasonError{Reason: ReasonUnauthorized, Err: err}
	case errors.Is(err, notify.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &gateway.ReasonError{Reason: ReasonUnavailable, Err: err}
	}
	return err
}
