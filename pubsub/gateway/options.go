package gateway

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
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

	DefaultMaxConnsPerAddr  = 256
	DefaultPublishRate      = 100
	DefaultPublishBurst     = 200
	DefaultJoinRate         = 20
	DefaultJoinBurst        = 100
	DefaultUserPublishRate  = 500
	DefaultUserPublishBurst = 1000
	DefaultUserJoinRate     = 100
	DefaultUserJoinBurst    = 500
)

// ErrForbidden may be returned (or wrapped) by Options.AuthenticateConn or
// Options.Authenticate to refuse a connection with 403 Forbidden instead of
// 401 Unauthorized.
var ErrForbidden = errors.New("gateway: forbidden")

// ErrUnavailable may be returned (or wrapped) by Options.AuthenticateConn
// or Options.Authenticate when the token cannot be checked now (the
// database of tokens is down): the connection is refused with 503 Service
// Unavailable and Retry-After, so that the client tries again later
// instead of taking its token for a bad one.
var ErrUnavailable = errors.New("gateway: unavailable")

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
	// connect (path.Match syntax, see ValidateHostPattern), matched against
	// the host of the Origin header with and without its port. A request
	// without Origin (not a browser) and a page of the request's own host
	// are always allowed, once the Host itself is (AllowedHosts). A refused
	// origin is answered 403 before the upgrade. Invalid patterns are
	// dropped with a warning.
	OriginPatterns []string

	// AllowedHosts lists the host patterns a request's Host header may
	// name (see HostAllowed): IP addresses, "localhost" and the hosts of
	// OriginPatterns are always allowed; list the names the gateway is
	// reached under ("ws.example.com"), or "*" for any. Another Host is
	// answered 403 before the upgrade: it is how a DNS-rebinding page
	// (Host and Origin both "evil.example") is told apart from a page of
	// the gateway's own. Invalid patterns are dropped with a warning.
	AllowedHosts []string

	// InsecureSkipVerify allows every origin and every Host. Prefer
	// OriginPatterns and AllowedHosts.
	InsecureSkipVerify bool

	// MaxConnsPerAddr bounds the connections open at once from one client
	// IP address (of http.Request.RemoteAddr: behind a proxy, the proxy's).
	// One more is answered 429 Too Many Requests before the upgrade.
	// Default 256; negative for no bound.
	MaxConnsPerAddr int

	// PublishRate and PublishBurst bound the publishes of one connection
	// (its pushes to broker topics and events to channels): a token
	// bucket of PublishBurst tokens refilled at PublishRate per second. A
	// publish past it gets the error reply "rate limited". Defaults 100
	// and 200; a negative rate is no limit.
	PublishRate  float64
	PublishBurst int

	// JoinRate and JoinBurst bound the joins of one connection in the same
	// way. Defaults 20 and 100; a negative rate is no limit.
	JoinRate  float64
	JoinBurst int

	// UserPublishRate, UserPublishBurst, UserJoinRate and UserJoinBurst
	// bound the publishes and joins of all the connections of one user
	// (Identity.User) together; anonymous connections have only their own
	// limits. Defaults 500 and 1000 for publishes, 100 and 500 for joins;
	// a negative rate is no limit. A connection refused for rate limits
	// much more often than it is allowed to send (past 1,000 refusals,
	// then 100 a second) is closed with StatusPolicyViolation (1008) and
	// the reason "rate limited: too many refused messages".
	UserPublishRate  float64
	UserPublishBurst int
	UserJoinRate     float64
	UserJoinBurst    int

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
	c.OriginPatterns = validPatterns(c.OriginPatterns, "origin", c.Logger.Warn)
	c.AllowedHosts = append(validPatterns(c.AllowedHosts, "allowed host", c.Logger.Warn), c.OriginPatterns...)
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	defaultRate(&c.PublishRate, &c.PublishBurst, DefaultPublishRate, DefaultPublishBurst)
	defaultRate(&c.JoinRate, &c.JoinBurst, DefaultJoinRate, DefaultJoinBurst)
	defaultRate(&c.UserPublishRate, &c.UserPublishBurst, DefaultUserPublishRate, DefaultUserPublishBurst)
	defaultRate(&c.UserJoinRate, &c.UserJoinBurst, DefaultUserJoinRate, DefaultUserJoinBurst)
	return c
}

// defaultRate sets a zero rate to def, and a burst below 1 to defBurst
// with the default rate, else to twice the rate (at least 1).
func defaultRate(r *float64, burst *int, def float64, defBurst int) {
	if *r == 0 {
		*r = def
	}
	if *burst > 0 || *r < 0 {
		return
	}
	if *r == def {
		*burst = defBurst
		return
	}
	*burst = max(1, int(2**r))
}
