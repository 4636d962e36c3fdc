package cluster

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardFile is the Grafana dashboard built on the metrics of the
// binaries.
const dashboardFile = "../grafana/ringcast.json"

// dashboardPanel is what the checks read of a panel of the dashboard.
type dashboardPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs reads the dashboard, checks its layout, and returns the
// query of every panel, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string           `json:"title"`
		UID    string           `json:"uid"`
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q, uid %q, %d panels", dashboardFile, d.Title, d.UID, len(d.Panels))
	}
	ids := map[int]bool{}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Fatalf("panel %d %q: duplicate id or bad position %+v", p.ID, p.Title, p.GridPos)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Fatalf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Fatalf("panel %q has an empty query", p.Title)
			}
			out[p.Title] = append(out[p.Title], q.Expr)
		}
	}
	return out
}

// metricName matches the metric names a query uses: those of ringcast, of
// the Go runtime and of the process.
var metricName = regexp.MustCompile(`\b(?:ringcast|go|process)_[a-zA-Z0-9_]+\b`)

// exposedNames returns the sample names in a Prometheus text exposition.
func exposedNames(text string) map[string]bool {
	names := map[string]bool{}
	for line := range strings.Lines(text) {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// TestGrafanaDashboard checks that every metric the Grafana dashboard
// queries is served by GET /metrics of a real topic server or gateway,
// with traffic between them.
func TestGrafanaDashboard(t *testing.T) {
	exprs := dashboardExprs(t)
	c := startCluster(t, 1, 1)
	gw := c.gateways[0].addr("listen")
	ws := dial(t, "gateway-1", gw)
	ws.send(joinMatrix)
	ws.expect(joinedMatrix)
	if status, body, err := httpDo("POST", "http://"+gw+"/api/publish?topic=topics:matrix", `{"m":1}`); err != nil || status != 200 {
		t.Fatalf("publish: %d %s %v", status, body, err)
	}
	exposed := map[string]bool{}
	for p, addr := range c.all() {
		status, body, err := httpDo("GET", "http://"+addr+"/metrics", "")
		if err != nil || status != 200 {
			t.Fatalf("GET /metrics of %s: %d %v", p.label, status, err)
		}
		maps.Copy(exposed, exposedNames(body))
	}
	used := 0
	for _, title := range slices.Sorted(maps.Keys(exprs)) {
		for _, e := range exprs[title] {
			names := metricName.FindAllString(e, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q uses no metric", title, e)
			}
			for _, n := range names {
				used++
				if !exposed[n] {
					t.Errorf("panel %q: %s is not served by the binaries (query %q)", title, n, e)
				}
			}
		}
	}
	t.Logf("%d panels, %d metric references, all served", len(exprs), used)
}
