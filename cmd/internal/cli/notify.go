package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/cmd/internal/notify/email"
	"github.com/ringcast/ringcast/cmd/internal/notify/inbox"
	"github.com/ringcast/ringcast/cmd/internal/notify/web"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// NotifyFlags are the flags of the notification system (package notify)
// that a gateway binary serves beside its WebSocket clients.
type NotifyFlags struct {
	Enabled      bool          // --notify
	JWTSecret    string        // --jwt-secret
	Anonymous    bool          // --anonymous: anonymous clients may join open topics
	SMTP         string        // --smtp host:port; "" sends no email
	SMTPUser     string        // --smtp-user
	SMTPPassword string        // --smtp-password
	SMTPFrom     string        // --smtp-from
	SMTPTLS      string        // --smtp-tls
	EmailDelay   time.Duration // --email-delay
}

// DefaultEmailDelay is the default of --email-delay.
const DefaultEmailDelay = email.DefaultDelay

// notifyPrefixes are the topic prefixes that only the notification system
// publishes to and that clients reach through the inbox channel only.
var notifyPrefixes = []string{notify.RingPrefix, notify.UserPrefix}

// NotifyPrefixes returns the topic prefixes reserved to the notification
// system.
func NotifyPrefixes() []string { return append([]string(nil), notifyPrefixes...) }

// DeclareNotify declares the notification system's flags on c.
func (c *Command) DeclareNotify() *NotifyFlags {
	f := &NotifyFlags{Enabled: true, Anonymous: true, SMTPTLS: string(email.TLSAuto), EmailDelay: DefaultEmailDelay}
	c.notify = f
	c.Var(boolValue{&f.Enabled}, "notify", "RINGCAST_NOTIFY",
		"serve the notification system (accounts and tokens, topics their creators own, an inbox with exact unread counts, email reminders) when --store is a database: true or false")
	c.Var(stringValue{&f.JWTSecret}, "jwt-secret", "RINGCAST_JWT_SECRET",
		"also accept client JWTs signed with this secret (HS256, sub = user id, exp required, an optional channels claim), minted by an application with its own accounts; with or without the notification system (prefer the variable: flags show in ps)")
	c.Var(boolValue{&f.Anonymous}, "anonymous", "RINGCAST_ANONYMOUS",
		"let WebSocket clients without a token join and publish to open topics (anything but notifications:* and users:*, which need a token and the inbox channel): true or false")
	c.Var(addrValue{p: &f.SMTP, optional: true}, "smtp", "RINGCAST_SMTP",
		"SMTP server (host:port) through which subscribers who left a notification unread for --email-delay, with no live connection, are emailed; empty sends no email")
	c.Var(stringValue{&f.SMTPUser}, "smtp-user", "RINGCAST_SMTP_USER",
		"SMTP user name (AUTH PLAIN, only over TLS or to a loopback server)")
	c.Var(stringValue{&f.SMTPPassword}, "smtp-password", "RINGCAST_SMTP_PASSWORD",
		"SMTP password (prefer the variable: flags show in ps)")
	c.Var(stringValue{&f.SMTPFrom}, "smtp-from", "RINGCAST_SMTP_FROM",
		`sender of the emails, "ringcast@example.com" or "Ringcast <ringcast@example.com>"; required with --smtp`)
	c.Var(stringValue{&f.SMTPTLS}, "smtp-tls", "RINGCAST_SMTP_TLS",
		"TLS to the SMTP server: auto (STARTTLS when offered), require (STARTTLS or fail), tls (TLS from the first byte, port 465) or none")
	c.Var(durationValue{&f.EmailDelay}, "email-delay", "RINGCAST_EMAIL_DELAY",
		"how long a notification may stay unread before its subscribers are emailed")
	return f
}

// on reports whether the notification system runs: enabled, with a
// database beneath it.
func (f *NotifyFlags) on(st StoreSpec) bool {
	return f != nil && f.Enabled && st.Kind != StoreMemory
}

// notifyDurability returns rules with the notification system's own:
// notifications:* durable and users:* memory-only, unless the operator
// gave rules for them. Notifications kept in memory only would break the
// system's promises (exact unread counts, nothing lost in a restart).
func notifyDurability(rules []pubsub.Durability) ([]pubsub.Durability, error) {
	out := append([]pubsub.Durability(nil), rules...)
	have := func(p string) *pubsub.Durability {
		for i := range out {
			if out[i].Pattern == p {
				return &out[i]
			}
		}
		return nil
	}
	ring := notify.RingPrefix + "*"
	for _, r := range out {
		// A memory rule at least as specific as notifications:* would make
		// some notification topics memory-only.
		if r.Memory && strings.HasPrefix(strings.TrimSuffix(r.Pattern, "*"), notify.RingPrefix) {
			return nil, fmt.Errorf("--durable: %s must stay durable while the notification system runs, and %q makes some of them memory-only (or give --notify=false)", ring, r.Pattern)
		}
	}
	if have(ring) == nil {
		out = append(out, pubsub.Durability{Pattern: ring})
	}
	if have(notify.UserPrefix+"*") == nil {
		out = append(out, pubsub.Durability{Pattern: notify.UserPrefix + "*", Memory: true})
	}
	return out, nil
}

// Notify is a running notification system.
type Notify struct {
	DB      *notify.DB
	Service *notify.Service
	Inbox   *inbox.Channel
	Email   *email.Sender // nil without --smtp
}

// StartNotify starts the notification system on node and the store
// StartNode opened, when the flags turn it on; it returns nil, nil when
// they do not. The caller closes it (Close) after the node has shut down.
func (e *Env) StartNotify(node *pubsub.Node) (*Notify, error) {
	f := e.cmd.notify
	if !f.on(e.cmd.Common.Store) || e.store == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cmd.Common.StoreTimeout)
	defer cancel()
	db, err := notify.OpenDB(ctx, e.storeLoc)
	if err != nil {
		return nil, fmt.Errorf("notification system: %s: %s", e.storeDesc, scrub(err.Error(), urlSecrets(e.storeLoc)))
	}
	n := &Notify{DB: db}
	opts := notify.Options{
		JWTSecret: []byte(f.JWTSecret),
		VerifyJWT: e.cmd.access.verifyJWT(),
		Logger:    e.Log.With("component", "notify"),
		Reader:    e.store,
		Trimmer:   e.store,
	}
	if f.SMTP != "" {
		if f.SMTPFrom == "" {
			_ = db.Close()
			return nil, errors.New("--smtp needs --smtp-from")
		}
		mode, err := email.ParseTLSMode(f.SMTPTLS)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("--smtp-tls: %w", err)
		}
		n.Email, err = email.New(db, email.Config{
			Addr: f.SMTP, Username: f.SMTPUser, Password: f.SMTPPassword, From: f.SMTPFrom,
			TLS: mode, Delay: f.EmailDelay, Node: node.Name(), Logger: e.Log.With("component", "email"),
		})
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("email: %w", err)
		}
		n.Email.Start()
		opts.OnNotify = n.Email.OnNotify
	}
	n.Service = notify.NewService(db, notify.NodePublisher(node), opts)
	n.Inbox = inbox.New(node, n.Service, &inbox.Options{Logger: e.Log.With("component", "inbox")})
	return n, nil
}

// scrub removes secrets from msg.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// GatewayOptions sets what the notification system adds to a gateway:
// identities from its tokens, the inbox channel, and the reserved
// prefixes, which no client joins directly. anonymous is --anonymous.
// n may be nil (no notification system): only --anonymous applies.
func (n *Notify) GatewayOptions(o *gateway.Options, anonymous bool) {
	o.DenyAnonymous = !anonymous
	if n == nil {
		return
	}
	o.AuthenticateConn = inbox.AuthenticateConn(n.Service.Authenticate)
	o.Channels = n.Inbox.Routes()
	refuse := gateway.ChannelFunc(func(context.Context, *gateway.Session, string, json.RawMessage) (json.RawMessage, error) {
		return nil, gateway.Reason("forbidden: this topic belongs to the notification system; join \"inbox\"")
	})
	for _, p := range notifyPrefixes {
		o.Channels[p+"*"] = refuse
	}
}

// Register adds the notification system's HTTP API and its web page (GET
// /, package notify/web) to mux. GET /api/topics/{name} answers with the
// notification topic to a request with a token, and with the cluster's
// view of the ringcast topic (api.topic) to one without.
func (n *Notify) Register(mux *http.ServeMux, api *API) {
	web.Register(mux)
	h := n.Service.Handler()
	for _, p := range []string{
		"/api/users", "/api/tokens", "/api/tokens/current", "/api/topics", "/api/read", "/api/inbox",
		"/api/topics/{name}/notifications", "/api/topics/{name}/notifications/{seq}/receipts",
		"/api/topics/{name}/subscription", "/api/topics/{name}/read",
		"DELETE /api/topics/{name}",
	} {
		mux.Handle(p, h)
	}
	mux.HandleFunc("GET /api/topics/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			h.ServeHTTP(w, r)
			return
		}
		api.topic(w, r)
	})
}

// NotifyStats is what GET /api/stats shows of the notification system.
type NotifyStats struct {
	Inbox inbox.Stats  `json:"inbox"`
	Email *email.Stats `json:"email,omitempty"`
	Error string       `json:"error,omitempty"` // why Email could not be read
}

// Stats returns the system's counters.
func (n *Notify) Stats(ctx context.Context) any {
	s := NotifyStats{Inbox: n.Inbox.Stats()}
	if n.Email != nil {
		es, err := n.Email.Stats(ctx)
		if err != nil {
			s.Error = err.Error()
		} else {
			s.Email = &es
		}
	}
	return s
}

// Drain ends the inbox sessions (after the gateway closed its clients).
func (n *Notify) Drain(context.Context) error { return n.Inbox.Close() }

// Close stops the email sender and closes the database: after the node has
// shut down.
func (n *Notify) Close() error {
	var err error
	if n.Email != nil {
		err = n.Email.Close()
	}
	return errors.Join(err, n.DB.Close())
}

// boolValue is a true/false flag that also takes its value from a variable.
type boolValue struct{ p *bool }

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v.p = b
	return nil
}

// IsBoolFlag lets --flag stand for --flag=true.
func (boolValue) IsBoolFlag() bool { return true }
