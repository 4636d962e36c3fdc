package email

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"strings"
	"time"
)

// TLSMode says how the sender secures its connection to the SMTP server.
type TLSMode string

// TLS modes of Config.TLS (and of the binaries' --smtp-tls).
const (
	// TLSAuto upgrades the connection with STARTTLS when the server offers
	// it, and sends in clear text otherwise (never with credentials, unless
	// the server is on the loopback interface). The default.
	TLSAuto TLSMode = "auto"
	// TLSRequire refuses to send unless the server offers STARTTLS.
	TLSRequire TLSMode = "require"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit TLSMode = "tls"
	// TLSNone never starts TLS. Credentials are refused with it unless the
	// server is on the loopback interface.
	TLSNone TLSMode = "none"
)

// ParseTLSMode reads a TLS mode: "auto" (or ""), "require", "tls" or
// "none", in any case.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return TLSAuto, nil
	case TLSAuto, TLSRequire, TLSImplicit, TLSNone:
		return m, nil
	}
	return "", fmt.Errorf("invalid SMTP TLS mode %q: want %s, %s, %s or %s", s, TLSAuto, TLSRequire, TLSImplicit, TLSNone)
}

// Defaults of Config.
const (
	DefaultDelay           = 10 * time.Minute
	DefaultMaxConcurrent   = 4
	DefaultPerUserPerHour  = 10
	DefaultDigestAfter     = 2
	DefaultBackoffMin      = time.Second
	DefaultBackoffMax      = 15 * time.Minute
	DefaultMaxAttempts     = 12
	DefaultPollInterval    = 2 * time.Second
	DefaultSendTimeout     = time.Minute
	DefaultBreakerFailures = 5
	DefaultBreakerTimeout  = 30 * time.Second
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultBatchSize       = 100
)

// Config configures a Sender. Zero fields take their defaults; Addr and
// From are required.
type Config struct {
	// Addr is the SMTP server, host:port (the binaries' --smtp).
	Addr string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN. Credentials are only ever sent over TLS, or in clear text to a
	// server on the loopback interface (a local relay): with TLSNone and
	// another host New fails, and with TLSAuto a server that offers no
	// STARTTLS gets no credentials and the send fails (and is retried).
	Username string
	Password string
	// From is the sender of every email: "ringcast@example.com" or
	// "Ringcast <ringcast@example.com>" (the binaries' --smtp-from). Its
	// domain also ends every Message-ID.
	From string
	// TLS is the TLS mode; "" means TLSAuto.
	TLS TLSMode
	// TLSConfig, when set, is the client TLS configuration (RootCAs for a
	// private CA or a test server). Its ServerName defaults to Addr's host.
	TLSConfig *tls.Config
	// Delay is how long a notification may stay unread before its
	// subscribers are emailed. Default DefaultDelay (10 minutes).
	Delay time.Duration
	// MaxConcurrent bounds the SMTP transactions this Sender runs at once.
	// Default DefaultMaxConcurrent (4).
	MaxConcurrent int
	// PerUserPerHour bounds the emails a user gets in any hour; reminders
	// beyond it wait for the window and merge into a digest. Default
	// DefaultPerUserPerHour (10); negative means no cap.
	PerUserPerHour int
	// DigestAfter: a user with more pending topics or unread notifications
	// than this gets a digest (counts per topic, trimmed excerpts) rather
	// than the notifications in full. Default DefaultDigestAfter (2).
	DigestAfter int
	// BackoffMin and BackoffMax bound the delay before a failed send is
	// retried: exponential in the attempts, with full jitter. Defaults 1 s
	// and 15 min.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// MaxAttempts is how many sends an email gets before it is marked
	// failed. Default DefaultMaxAttempts (12).
	MaxAttempts int
	// PollInterval is how often the scheduler looks for due reminders and
	// the sender for due emails (the sender is also woken at once when the
	// scheduler queues one). Default DefaultPollInterval (2 s).
	PollInterval time.Duration
	// SendTimeout bounds one SMTP transaction, from dialling to the
	// server's answer to the message. The lease a sender takes on an email
	// is twice as long. Default DefaultSendTimeout (1 minute).
	SendTimeout time.Duration
	// BreakerFailures is how many consecutive failed transactions open the
	// circuit breaker. Default DefaultBreakerFailures (5).
	BreakerFailures int
	// BreakerTimeout is how long the breaker stays open before a probe
	// (half-open). Default DefaultBreakerTimeout (30 s).
	BreakerTimeout time.Duration
	// Retention is how long sent and failed emails stay in the outbox
	// (for Stats, for the per-user cap, for an operator). Default
	// DefaultRetention (7 days); at least an hour is kept whatever it says.
	Retention time.Duration
	// BatchSize bounds the users one scheduler round handles and the rows
	// one statement touches. Default DefaultBatchSize (100).
	BatchSize int
	// Node names this process in the outbox leases (claimed_by). Default:
	// the host name.
	Node string
	// HelloName is the name the sender gives in EHLO. Default: the host
	// name, or "localhost".
	HelloName string
	// Link, when set, is where the emails tell users to read their
	// notifications (the web page's URL).
	Link string
	// Logger receives the sender's logs; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now. Every time kept
	// in the database comes from it (tests move it forward).
	Clock func() time.Time
}

// withDefaults checks c and returns it with its defaults filled in, the
// parsed From address and the server's host.
func (c Config) withDefaults() (Config, *mail.Address, string, error) {
	if c.Addr == "" {
		return c, nil, "", errors.New("email: no SMTP server (Addr, --smtp host:port)")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || port == "" {
		return c, nil, "", fmt.Errorf("email: SMTP server %q: want host:port", c.Addr)
	}
	if c.From == "" {
		return c, nil, "", errors.New("email: no sender address (From, --smtp-from)")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return c, nil, "", fmt.Errorf("email: sender address %q: %v", c.From, err)
	}
	if _, _, ok := strings.Cut(from.Address, "@"); !ok {
		return c, nil, "", fmt.Errorf("email: sender address %q has no domain", c.From)
	}
	if c.TLS, err = ParseTLSMode(string(c.TLS)); err != nil {
		return c, nil, "", fmt.Errorf("email: %w", err)
	}
	if c.Username == "" && c.Password != "" {
		return c, nil, "", errors.New("email: an SMTP password without a user name")
	}
	if c.Username != "" && c.TLS == TLSNone && !isLoopback(host) {
		return c, nil, "", fmt.Errorf("email: refusing to send SMTP credentials in clear text to %s: use TLS mode %s, %s or %s, or a relay on the loopback interface", host, TLSAuto, TLSRequire, TLSImplicit)
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"Delay", c.Delay}, {"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax}, {"PollInterval", c.PollInterval}, {"SendTimeout", c.SendTimeout}, {"BreakerTimeout", c.BreakerTimeout}, {"Retention", c.Retention}} {
		if v.d < 0 {
			return c, nil, "", fmt.Errorf("email: negative %s %v", v.name, v.d)
		}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"MaxConcurrent", c.MaxConcurrent}, {"DigestAfter", c.DigestAfter}, {"MaxAttempts", c.MaxAttempts}, {"BreakerFailures", c.BreakerFailures}, {"BatchSize", c.BatchSize}} {
		if v.n < 0 {
			return c, nil, "", fmt.Errorf("email: negative %s %d", v.name, v.n)
		}
	}
	setDuration(&c.Delay, DefaultDelay)
	setDuration(&c.BackoffMin, DefaultBackoffMin)
	setDuration(&c.BackoffMax, DefaultBackoffMax)
	setDuration(&c.PollInterval, DefaultPollInterval)
	setDuration(&c.SendTimeout, DefaultSendTimeout)
	setDuration(&c.BreakerTimeout, DefaultBreakerTimeout)
	setDuration(&c.Retention, DefaultRetention)
	if c.Retention < time.Hour {
		c.Retention = time.Hour // the per-user cap looks back an hour
	}
	if c.BackoffMax < c.BackoffMin {
		return c, nil, "", fmt.Errorf("email: BackoffMax %v below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	setInt(&c.MaxConcurrent, DefaultMaxConcurrent)
	setInt(&c.PerUserPerHour, DefaultPerUserPerHour)
	setInt(&c.DigestAfter, DefaultDigestAfter)
	setInt(&c.MaxAttempts, DefaultMaxAttempts)
	setInt(&c.BreakerFailures, DefaultBreakerFailures)
	setInt(&c.BatchSize, DefaultBatchSize)
	hostname, _ := os.Hostname()
	if c.Node == "" {
		c.Node = hostname
		if c.Node == "" {
			c.Node = "ringcast"
		}
	}
	if c.HelloName == "" {
		c.HelloName = hostname
		if c.HelloName == "" || strings.ContainsAny(c.HelloName, " \r\n") {
			c.HelloName = "localhost"
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c, from, host, nil
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}

// isLoopback reports whether host names the loopback interface:
// "localhost" or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
