package gateway

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"path"
	"time"
)

// Defaults of the Options fields.
const (
	DefaultMaxMessageSize     = 1 << 20
	DefaultMaxTopicsPerConn   = 100
	DefaultOutboundQueueBytes = 1 << 20
	DefaultIdleTimeout        = 60 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultJoinTimeout        = 10 * time.Second
	DefaultPublishTimeout     = 10 * time.Second
	DefaultEventTimeout       = 10 * time.Second
)

// ErrForbidden may be returned (or wrapped) by Options.AuthenticateConn or
// Options.Authenticate to refuse a connection with 403 Forbidden instead of
// 401 Unauthorized.
var ErrForbidden = errors.New("gateway: forbidden")

// Options configures a Handler. A nil *Options is valid; zero (or negative)
// fields take their defaults. NewHandler copies the Options: changing them
// afterwards has no effect.
type Options struct {
	// MaxMessageSize bounds one message from a client, in bytes. A larger one
	// closes the connection with StatusMessageTooBig (1009). Default 1 MiB.
	MaxMessageSize int64

	// MaxTopicsPerConn bounds the topics one connection may have joined at once.
	// A join beyond it gets the error reason "too many topics". Default 100.
	MaxTopicsPerConn int

	// OutboundQueueBytes bounds the bytes sent to one connection that the
	// client has not taken: queued and not yet written, and, on Linux,
	// written to the socket and not yet acknowledged by the client. A
	// connection that would go past it is a slow consumer: it is closed with
	// StatusTryAgainLater (1013) and reason "slow consumer", and counted in
	// Stats.SlowConsumers. One message is always accepted into an empty queue,
	// whatever its size. As bytes in flight count, it should exceed the
	// bandwidth-delay product of the clients' links. Where the socket cannot
	// be measured, the connection's send buffer is made small instead.
	// Default 1 MiB.
	OutboundQueueBytes int

	// IdleTimeout closes a connection that sent no data message for that long
	// (heartbeats count) with StatusPolicyViolation (1008) and reason
	// "idle timeout". Default 60 s.
	IdleTimeout time.Duration

	// WriteTimeout bounds each batch of writes to one connection, and the
	// close handshake; a client that does not take its data, or does not
	// answer the close message, within it is disconnected. Default 10 s.
	WriteTimeout time.Duration

	// JoinTimeout bounds a join, including the cluster-wide Subscribe; the join
	// then gets the error reason "join timeout". Default 10 s.
	JoinTimeout time.Duration

	// PublishTimeout bounds a client's publish; the publish then gets the error
	// reason "publish timeout". Default 10 s.
	PublishTimeout time.Duration

	// OriginPatterns lists the host patterns of cross-origin pages allowed to
	// connect, as in github.com/coder/websocket AcceptOptions (path.Match
	// syntax). The request's own host is always allowed. Invalid patterns are
	// dropped with a warning.
	OriginPatterns []string

	// InsecureSkipVerify allows every origin. Prefer OriginPatterns.
	InsecureSkipVerify bool

	// AuthenticateConn, if set, is called before the upgrade with the
	// request and the client's token, and returns who the client is. The
	// token is the one the Phoenix client sends in its Sec-WebSocket-Protocol
	// header (base64url.bearer.phx.<token>, decoded; phoenix.js authToken),
	// or else the query parameter "token" (phoenix.js params: {token}), or
	// "" when there is neither. An Identity with an empty User is an
	// anonymous connection. An error refuses the upgrade: 403 if it wraps
	// ErrForbidden, 401 otherwise. It may be called concurrently. Without
	// it (and without Authenticate) every connection is anonymous.
	AuthenticateConn func(r *http.Request, token string) (Identity, error)

	// Authenticate is the identity-less form of AuthenticateConn: the
	// connections it accepts are anonymous. It is used only when
	// AuthenticateConn is nil.
	Authenticate func(r *http.Request, token string) error

	// DenyAnonymous refuses joins of broker topics (the topics no channel
	// serves) to anonymous connections, with the error reason
	// "unauthorized". By default anonymous clients may join them, as
	// websocat users do. Channels decide for themselves (Session.Identity).
	DenyAnonymous bool

	// Authorize, if set, decides every join of a broker topic
	// (ActionSubscribe, then ActionHistory when the join resumes with
	// since) and every client publish (ActionPublish). A nil error allows;
	// any other refuses the join or the push with an error reply whose
	// reason is the *RefusalError's (see Refuse), or "unauthorized": the
	// connection stays open. It runs on the connection's read goroutine,
	// may be called concurrently for different connections, and must not
	// block.
	Authorize func(Request) error

	// Channels routes topics to server-side channels instead of the broker.
	// A key is an exact topic name ("inbox") or a prefix followed by "*"
	// ("inbox:*"); an exact name wins over prefixes, and a longer prefix
	// over a shorter one. Empty keys and nil channels are dropped with a
	// warning. The map is copied by NewHandler.
	Channels map[string]Channel

	// EventTimeout bounds a channel's handling of one client event (see
	// EventHandler); the event then gets the error reason "event timeout".
	// Default 10 s.
	EventTimeout time.Duration

	// Logger receives the gateway's logs. nil discards them. The Handler
	// samples them: of the lines with one level and message, the first 3
	// of each 10 seconds are logged and the rest counted, and the next
	// one logged says how many were dropped. A client retrying with a bad
	// token is a few lines, not one per attempt.
	Logger *slog.Logger
}

// Identity is who a connection authenticated as (Options.AuthenticateConn).
// The zero Identity is an anonymous connection.
type Identity struct {
	// User identifies the authenticated user; "" for an anonymous
	// connection.
	User string
	// Data is whatever else the application wants its channels to know
	// about the connection (roles, the token's expiry, a tenant). The
	// gateway does not look at it.
	Data any
}

// Anonymous reports whether the identity is anonymous (no User).
func (id Identity) Anonymous() bool { return id.User == "" }

// withDefaults returns a copy of o with every zero field set to its default.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxTopicsPerConn <= 0 {
		c.MaxTopicsPerConn = DefaultMaxTopicsPerConn
	}
	if c.OutboundQueueBytes <= 0 {
		c.OutboundQueueBytes = DefaultOutboundQueueBytes
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.EventTimeout <= 0 {
		c.EventTimeout = DefaultEventTimeout
	}
	if c.Channels != nil {
		c.Channels = maps.Clone(c.Channels)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	patterns := make([]string, 0, len(c.OriginPatterns))
	for _, p := range c.OriginPatterns {
		if _, err := path.Match(p, ""); err != nil {
			c.Logger.Warn("gateway: dropping invalid origin pattern", "pattern", p, "err", err)
			continue
		}
		patterns = append(patterns, p)
	}
	c.OriginPatterns = patterns
	return c
}
