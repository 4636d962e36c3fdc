package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/cmd/internal/notify/email"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// metricsServer serves what RegisterMetrics registers, for a node and a
// gateway, on 127.0.0.1, with the command line args; it returns the mux
// too, for requests from other addresses.
func metricsServer(t *testing.T, args ...string) (*http.ServeMux, string) {
	t.Helper()
	e, _, _ := testEnv(t, args...)
	n := startNode(t, pubsub.Config{NodeName: "m1"})
	gw := gateway.NewHandler(broker.New(n), nil)
	t.Cleanup(func() { _ = gw.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	e.RegisterMetrics(mux, Metrics{Node: n, Gateway: gw})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return mux, srv.URL
}

// TestMetricsEndpoint gets /metrics: the node's, the gateway's, Go's and
// the process's metrics. Without --pprof, /debug/pprof/ is not served.
func TestMetricsEndpoint(t *testing.T) {
	mux, base := metricsServer(t)
	r := do(t, http.MethodGet, base+"/metrics", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		"\nringcast_cluster_members 1\n",
		`ringcast_node_info{node="m1"} 1`,
		"\nringcast_gateway_connections 0\n",
		"# TYPE ringcast_claim_duration_seconds histogram",
		"\ngo_goroutines ",
		"\nprocess_open_fds ",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
	if r := do(t, http.MethodGet, base+"/debug/pprof/", ""); r.status != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ without --pprof: %d, want 404", r.status)
	}
	// Nor to anyone else.
	req := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ from a remote address without --pprof: %d, want 404", w.Code)
	}
}

// fromAddr serves a GET of path on mux as if from remoteAddr.
func fromAddr(mux http.Handler, path, remoteAddr string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remoteAddr
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	return w
}

// TestPprofLoopbackOnly: with --pprof, profiles are served to loopback
// clients and refused (403) to others.
func TestPprofLoopbackOnly(t *testing.T) {
	mux, base := metricsServer(t, "--pprof")
	r := do(t, http.MethodGet, base+"/debug/pprof/", "")
	if r.status != http.StatusOK || !strings.Contains(r.body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ from loopback: %d %.200s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, base+"/debug/pprof/goroutine?debug=1", ""); r.status != http.StatusOK || !strings.Contains(r.body, "goroutine profile") {
		t.Fatalf("GET /debug/pprof/goroutine from loopback: %d %.200s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, base+"/debug/pprof/cmdline", ""); r.status != http.StatusOK {
		t.Fatalf("GET /debug/pprof/cmdline from loopback: %d", r.status)
	}
	for addr, want := range map[string]int{
		"127.0.0.1:5000":          http.StatusOK,
		"127.8.9.10:5000":         http.StatusOK,
		"[::1]:5000":              http.StatusOK,
		"[::ffff:127.0.0.1]:5000": http.StatusOK,
		"192.0.2.7:40000":         http.StatusForbidden,
		"[2001:db8::1]:40000":     http.StatusForbidden,
		"[::ffff:192.0.2.7]:1":    http.StatusForbidden,
		"10.0.0.1:1":              http.StatusForbidden,
		"not an address":          http.StatusForbidden,
	} {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
			if w := fromAddr(mux, path, addr); w.Code != want {
				t.Errorf("GET %s from %s: %d, want %d", path, addr, w.Code, want)
			}
		}
	}
	// /metrics is served to every address.
	if w := fromAddr(mux, "/metrics", "192.0.2.7:40000"); w.Code != http.StatusOK {
		t.Errorf("GET /metrics from a remote address: %d", w.Code)
	}
}

// TestPprofAllowRemote: --pprof-allow-remote (here from its variable)
// serves profiles to every address.
func TestPprofAllowRemote(t *testing.T) {
	c := NewCommand("ringcast-test", "")
	vars := map[string]string{"RINGCAST_PPROF": "true", "RINGCAST_PPROF_ALLOW_REMOTE": "1"}
	if err := c.Parse(nil, env(vars)); err != nil {
		t.Fatal(err)
	}
	if !c.metrics.Pprof || !c.metrics.PprofAllowRemote {
		t.Fatalf("flags from the environment: %+v", *c.metrics)
	}
	mux, _ := metricsServer(t, "--pprof", "--pprof-allow-remote")
	if w := fromAddr(mux, "/debug/pprof/", "192.0.2.7:40000"); w.Code != http.StatusOK {
		t.Fatalf("GET /debug/pprof/ from a remote address with --pprof-allow-remote: %d", w.Code)
	}
	if err := NewCommand("ringcast-test", "").Parse([]string{"--pprof=maybe"}, nil); err == nil {
		t.Fatal("--pprof=maybe accepted")
	}
}

// TestEmailMetrics reads the email sender's state through the collector:
// the outbox from the database while it can be read, the counters always.
func TestEmailMetrics(t *testing.T) {
	ctx := t.Context()
	db, err := notify.OpenDB(ctx, filepath.Join(t.TempDir(), "ringcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = db.Close()
		}
	})
	s, err := email.New(db, email.Config{Addr: "127.0.0.1:25", From: "ringcast@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := newEmailCollector(s.Stats)
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	expect := func(up string) {
		t.Helper()
		want := `
# HELP ringcast_email_database_up 1 when the scrape could read the email outbox from the database, 0 when it could not (the outbox and reminder gauges are then missing).
# TYPE ringcast_email_database_up gauge
ringcast_email_database_up ` + up + `
# HELP ringcast_email_breaker_state The SMTP circuit breaker's state: 1 for the current one of "closed", "half-open", "open".
# TYPE ringcast_email_breaker_state gauge
ringcast_email_breaker_state{state="closed"} 1
ringcast_email_breaker_state{state="half-open"} 0
ringcast_email_breaker_state{state="open"} 0
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ringcast_email_database_up", "ringcast_email_breaker_state"); err != nil {
			t.Fatal(err)
		}
	}
	expect("1")
	if n := testutil.CollectAndCount(c, "ringcast_email_outbox"); n != 4 {
		t.Fatalf("%d outbox series, want one per state (4)", n)
	}
	if n := testutil.CollectAndCount(c, "ringcast_email_sends_total"); n != 3 {
		t.Fatalf("%d send series, want 3", n)
	}
	// Without its database the collector reports so, and the counters.
	closed = true
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	expect("0")
	if n := testutil.CollectAndCount(c, "ringcast_email_outbox"); n != 0 {
		t.Fatalf("%d outbox series without a database", n)
	}
	if n := testutil.CollectAndCount(c, "ringcast_email_sends_total"); n != 3 {
		t.Fatalf("%d send series without a database, want 3", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// TestGuardRefusalMetrics: the guard's refusals are counted on /metrics by
// reason, from a real refused request.
func TestGuardRefusalMetrics(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "g1"})
	g, gw, base := guardedServer(t, n, GuardConfig{AllowedHosts: []string{"ws.example.com"}})
	if r := request(t, http.MethodGet, base+"/api/cluster", "", "Host", "evil.example.net"); r.status != http.StatusForbidden {
		t.Fatalf("GET with a bad Host: %d %s", r.status, r.body)
	}
	e, _, _ := testEnv(t)
	mux := http.NewServeMux()
	e.RegisterMetrics(mux, Metrics{Node: n, Gateway: gw, Guard: g.Stats})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r := do(t, http.MethodGet, srv.URL+"/metrics", "")
	for _, want := range []string{
		`ringcast_http_requests_refused_total{reason="host"} 1`,
		`ringcast_http_requests_refused_total{reason="rate_limited"} 0`,
		`ringcast_http_requests_refused_total{reason="protected_mode"} 0`,
		`ringcast_peer_connections_refused_total{reason="handshake"} 0`,
		"\nringcast_gateway_upgrades_refused_host_total 0\n",
		"\nringcast_gateway_flood_closed_total 0\n",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
	if problems, err := testutil.CollectAndLint(newGuardCollector(g.Stats)); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	// The whole page passes promtool, when it is installed (Debian
	// package prometheus; RINGCAST_REQUIRE_PROMTOOL=1 requires it).
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RINGCAST_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool not found and RINGCAST_REQUIRE_PROMTOOL=1: %v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(r.body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
