package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lookPathOrSkip returns the path of a Prometheus binary; without it the
// test skips, unless RINGCAST_REQUIRE_PROMTOOL=1 (set where the Debian
// package prometheus is installed), which makes it fail.
func lookPathOrSkip(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("RINGCAST_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("%s not found and RINGCAST_REQUIRE_PROMTOOL=1: %v", name, err)
		}
		t.Skipf("%s not found (apt-get install prometheus); set RINGCAST_REQUIRE_PROMTOOL=1 to fail instead", name)
	}
	return path
}

// scrapeConfig returns prometheus.yml with its targets replaced by
// targets (process name → host:port) and its intervals shortened, so that
// the test checks the file's own global and job settings.
func scrapeConfig(t *testing.T, targets map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(b), "    static_configs:\n")
	if !ok {
		t.Fatal("prometheus.yml has no static_configs")
	}
	head = strings.ReplaceAll(head, "interval: 5s", "interval: 1s")
	var sb strings.Builder
	sb.WriteString(head + "    static_configs:\n")
	for name, addr := range targets {
		fmt.Fprintf(&sb, "      - targets: [%q]\n        labels: {process: %s}\n", addr, name)
	}
	return sb.String()
}

// startPrometheus runs prometheus with config on 127.0.0.1 (a port the
// system picks), its data in a temporary directory, stopped by its PID
// when the test ends; it returns the address of its HTTP API.
func startPrometheus(t *testing.T, bin, config string) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0", "--log.format=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addrs := make(chan string, 1)
	var logs strings.Builder // written by the reader below until exited
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			var m map[string]any
			if !sent && json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "Listening on" {
				if a, _ := m["address"].(string); a != "" {
					addrs <- a
					sent = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(testTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-addrs:
		return a
	case <-exited:
		t.Fatalf("prometheus exited before it listened:\n%s", logs.String())
	case <-time.After(testTimeout):
		t.Fatal("prometheus did not listen in time")
	}
	return ""
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query; ok is false while Prometheus does not
// answer it.
func promQuery(addr, query string) (samples []promSample, ok bool) {
	status, body, err := httpDo("GET", "http://"+addr+"/api/v1/query?query="+url.QueryEscape(query), "")
	if err != nil || status != 200 {
		return nil, false
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || r.Status != "success" {
		return nil, false
	}
	return r.Data.Result, true
}

// TestPrometheusScrapesTheCluster runs a real Prometheus with
// prometheus.yml pointed at a topic server and a gateway, and waits until
// both targets are up and their ringcast_ metrics are stored.
func TestPrometheusScrapesTheCluster(t *testing.T) {
	bin := lookPathOrSkip(t, "prometheus")
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "config", "prometheus.yml").CombinedOutput(); err != nil {
			t.Fatalf("promtool check config prometheus.yml: %v\n%s", err, out)
		}
	}
	c := startCluster(t, 1, 1)
	targets := map[string]string{"topic-1": c.topics[0].addr("http"), "gateway-1": c.gateways[0].addr("listen")}
	addr := startPrometheus(t, bin, scrapeConfig(t, targets))

	waitFor(t, 60*time.Second, "prometheus to scrape both targets", func() bool {
		up, ok := promQuery(addr, `up{job="ringcast"}`)
		if !ok || len(up) != 2 {
			return false
		}
		for _, s := range up {
			if s.Value[1] != "1" || targets[s.Metric["process"]] != s.Metric["instance"] {
				return false
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, "ringcast_ metrics of both targets", func() bool {
		members, ok := promQuery(addr, `ringcast_cluster_members{job="ringcast"}`)
		if !ok || len(members) != 2 {
			return false
		}
		for _, s := range members {
			if s.Value[1] != "2" {
				return false
			}
		}
		conns, ok := promQuery(addr, `ringcast_gateway_connections{process="gateway-1"}`)
		return ok && len(conns) == 1
	})

	// Every query of the Grafana dashboard is valid PromQL that this
	// Prometheus evaluates, with the dashboard's variables filled in.
	vars := strings.NewReplacer("$instance", ".*", "$__rate_interval", "1m")
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			q := vars.Replace(e)
			status, body, err := httpDo("GET", "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q), "")
			if err != nil || status != 200 || !strings.Contains(body, `"status":"success"`) {
				t.Errorf("panel %q: query %s: %d %s %v", title, q, status, body, err)
			}
		}
	}
}
