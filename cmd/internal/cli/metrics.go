package cli

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringcast/ringcast/cmd/internal/notify/email"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/metrics"
	"github.com/ringcast/ringcast/pubsub/store"
)

// MetricsFlags holds the values of the flags about metrics and profiles.
type MetricsFlags struct {
	Pprof            bool // --pprof: serve net/http/pprof under /debug/pprof/
	PprofAllowRemote bool // --pprof-allow-remote: to clients off the loopback interface too
}

// declareMetrics declares the flags about metrics and profiles on c.
func (c *Command) declareMetrics() *MetricsFlags {
	f := &MetricsFlags{}
	c.Var(boolValue{&f.Pprof}, "pprof", "RINGCAST_PPROF",
		"serve Go profiles (net/http/pprof) under /debug/pprof/ on the HTTP address, to loopback clients only")
	c.Var(boolValue{&f.PprofAllowRemote}, "pprof-allow-remote", "RINGCAST_PPROF_ALLOW_REMOTE",
		"with --pprof, serve profiles to clients on any address, not only loopback (profiles reveal the process's internals; a reverse proxy on the same host makes every client look local)")
	return f
}

// Metrics says what GET /metrics reports: a node, and optionally a
// gateway and the notification system.
type Metrics struct {
	Node *pubsub.Node
	// Store, when it tells its size (store.Sizer), adds
	// ringcast_store_size_bytes. RegisterMetrics sets it to the store
	// StartNode opened.
	Store   pubsub.Store
	Gateway *gateway.Handler // nil: no gateway
	Notify  *Notify          // nil: no notification system
	// Guard reads the counters of the Guard in front of the listener
	// (Guard.Stats); nil: none.
	Guard func() GuardStats
}

// emailStatsTimeout bounds the database queries of a scrape's email
// metrics.
const emailStatsTimeout = 5 * time.Second

// NewMetricsHandler returns the handler of GET /metrics: the metrics of m
// (see package pubsub/metrics, and the email metrics of the notification
// system when it sends email), and those of the Go runtime and the process,
// in the Prometheus exposition format. Errors go to log (nil: discarded).
func NewMetricsHandler(m Metrics, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if m.Node != nil {
		reg.MustRegister(metrics.NewCollector(m.Node))
	}
	if m.Gateway != nil {
		reg.MustRegister(metrics.NewGatewayCollector(m.Gateway))
	}
	if sz, ok := m.Store.(store.Sizer); ok {
		reg.MustRegister(metrics.NewStoreCollector(sz))
	}
	if m.Guard != nil {
		reg.MustRegister(newGuardCollector(m.Guard))
	}
	if m.Notify != nil && m.Notify.Email != nil {
		reg.MustRegister(newEmailCollector(m.Notify.Email.Stats))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// RegisterMetrics registers GET /metrics (NewMetricsHandler) on mux and,
// with --pprof, the Go profiles under /debug/pprof/.
func (e *Env) RegisterMetrics(mux *http.ServeMux, m Metrics) {
	if m.Store == nil {
		m.Store = e.store
	}
	mux.Handle("/metrics", NewMetricsHandler(m, e.Log))
	if f := e.cmd.metrics; f != nil && f.Pprof {
		mux.Handle("/debug/pprof/", PprofHandler(f.PprofAllowRemote))
		e.Log.Info("serving profiles under /debug/pprof/", "remote", f.PprofAllowRemote)
	}
}

// PprofHandler serves net/http/pprof under /debug/pprof/. Unless
// allowRemote, a client whose address is not a loopback address gets 403.
func PprofHandler(allowRemote bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the named profiles too
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowRemote && !loopbackClient(r.RemoteAddr) {
			http.Error(w, "profiles are served to loopback clients only (--pprof-allow-remote)", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// loopbackClient reports whether a request's RemoteAddr ("ip:port") is on
// the loopback interface (127.0.0.0/8, ::1, or 127.x mapped into IPv6).
func loopbackClient(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// guardCollector reads a Guard's refusals at each scrape.
type guardCollector struct {
	stats   func() GuardStats
	refused *prometheus.Desc
}

func newGuardCollector(stats func() GuardStats) *guardCollector {
	return &guardCollector{
		stats: stats,
		refused: prometheus.NewDesc("ringcast_http_requests_refused_total", `HTTP requests (WebSocket upgrades and API calls) the listener's guard refused, by reason: `+
			`"protected_mode" (from another host while no client authentication is configured), "host" (a Host not allowed), `+
			`"cross_site" (an unsafe request from another site's page), "content_type" (a browser body that is not JSON), `+
			`"preflight" (a CORS preflight of an origin not allowed), "rate_limited" (past --api-rate), "too_large" (a body past the bound).`,
			[]string{"reason"}, nil),
	}
}

// Describe sends the descriptor of the metric.
func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.refused }

// Collect reads the guard's counters once and sends them.
func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, r := range []struct {
		reason string
		n      uint64
	}{
		{"protected_mode", s.ProtectedMode},
		{"host", s.Host},
		{"cross_site", s.CrossSite},
		{"content_type", s.ContentType},
		{"preflight", s.Preflight},
		{"rate_limited", s.RateLimited},
		{"too_large", s.TooLarge},
	} {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.n), r.reason)
	}
}

// emailCollector reads the email sender's state at each scrape.
type emailCollector struct {
	stats func(context.Context) (email.Stats, error)

	up, outbox, pending, pendingDue, sends, queued, dropped *prometheus.Desc
	postponed, leaseLost, inFlight, breaker, breakerOpened  *prometheus.Desc
}

func newEmailCollector(stats func(context.Context) (email.Stats, error)) *emailCollector {
	return &emailCollector{
		stats:         stats,
		up:            prometheus.NewDesc("ringcast_email_database_up", "1 when the scrape could read the email outbox from the database, 0 when it could not (the outbox and reminder gauges are then missing).", nil, nil),
		outbox:        prometheus.NewDesc("ringcast_email_outbox", `Emails in the outbox (every node's), by state: "pending", "sending", "sent", "failed" (sent and failed ones are kept for a while).`, []string{"state"}, nil),
		pending:       prometheus.NewDesc("ringcast_email_reminders_pending", "Reminders not yet handled (every node's): an email follows if the notification is still unread when they are due.", nil, nil),
		pendingDue:    prometheus.NewDesc("ringcast_email_reminders_due", "Pending reminders already due.", nil, nil),
		sends:         prometheus.NewDesc("ringcast_email_sends_total", `SMTP sends by this node, by result: "sent", "retry" (failed, rescheduled), "failed" (failed for good).`, []string{"result"}, nil),
		queued:        prometheus.NewDesc("ringcast_email_queued_total", "Emails this node put in the outbox.", nil, nil),
		dropped:       prometheus.NewDesc("ringcast_email_reminders_dropped_total", `Reminders dropped without an email, by reason: "read", "online", "no_address", "unsubscribed".`, []string{"reason"}, nil),
		postponed:     prometheus.NewDesc("ringcast_email_reminders_postponed_total", "Reminders put off by the per-user cap.", nil, nil),
		leaseLost:     prometheus.NewDesc("ringcast_email_lease_lost_total", "Sends whose lease had expired and been taken by another sender before they were recorded.", nil, nil),
		inFlight:      prometheus.NewDesc("ringcast_email_sends_in_flight", "SMTP transactions running now.", nil, nil),
		breaker:       prometheus.NewDesc("ringcast_email_breaker_state", `The SMTP circuit breaker's state: 1 for the current one of "closed", "half-open", "open".`, []string{"state"}, nil),
		breakerOpened: prometheus.NewDesc("ringcast_email_breaker_opened_total", "Times the SMTP circuit breaker opened.", nil, nil),
	}
}

// Describe sends the descriptors of every metric.
func (c *emailCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.outbox, c.pending, c.pendingDue, c.sends, c.queued, c.dropped, c.postponed, c.leaseLost, c.inFlight, c.breaker, c.breakerOpened} {
		ch <- d
	}
}

// Collect reads the sender's state once and sends the metrics. When the
// database cannot be read, the counters are sent all the same.
func (c *emailCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), emailStatsTimeout)
	s, err := c.stats(ctx)
	cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if err != nil {
		gauge(c.up, 0)
	} else {
		gauge(c.up, 1)
		for state, n := range s.Outbox {
			gauge(c.outbox, float64(n), state)
		}
		gauge(c.pending, float64(s.Pending))
		gauge(c.pendingDue, float64(s.PendingDue))
	}
	counter(c.sends, s.Sent, "sent")
	counter(c.sends, s.Retries, "retry")
	counter(c.sends, s.Failed, "failed")
	counter(c.queued, s.Queued)
	counter(c.dropped, s.Dropped.Read, "read")
	counter(c.dropped, s.Dropped.Online, "online")
	counter(c.dropped, s.Dropped.NoAddress, "no_address")
	counter(c.dropped, s.Dropped.Unsubscribed, "unsubscribed")
	counter(c.postponed, s.Postponed)
	counter(c.leaseLost, s.LeaseLost)
	gauge(c.inFlight, float64(s.InFlight))
	for _, state := range []string{"closed", "half-open", "open"} {
		v := 0.0
		if s.Breaker == state {
			v = 1
		}
		gauge(c.breaker, v, state)
	}
	counter(c.breakerOpened, s.BreakerOpened)
}
