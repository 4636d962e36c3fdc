package cluster

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store/pgtest"
	_ "modernc.org/sqlite"
)

const durableTopic = "orders:durable"

// publishDurable publishes {"n": n} to durableTopic through the gateway at
// addr, acknowledged by the owner (with a store: committed), and returns
// its position.
func publishDurable(t *testing.T, addr string, n int) published {
	t.Helper()
	status, p, err := publishN(addr, durableTopic, "owner", n, testTimeout)
	if err != nil {
		t.Fatalf("publish n=%d to %s: %d %v", n, durableTopic, status, err)
	}
	return p
}

// killAll ends every process with SIGKILL, as a crash of the machines
// would: no hand-off, no leave, no store closed.
func killAll(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatalf("SIGKILL %s: %v", p.label, err)
		}
	}
	for _, p := range procs {
		p.waitExit(testTimeout)
	}
}

// durableRun publishes total messages to durableTopic through gateway,
// checks that a subscriber receives them live at seq 1..total, and returns
// the positions, indexed by n.
func durableRun(t *testing.T, gateway string, total int) map[int]published {
	t.Helper()
	sub := dial(t, "subscriber", gateway)
	sub.joinMeta(durableTopic)
	pos := make(map[int]published, total)
	start := time.Now()
	for n := 1; n <= total; n++ {
		pos[n] = publishDurable(t, gateway, n)
		if pos[n].Seq != uint64(n) || pos[n].Epoch != pos[1].Epoch {
			t.Fatalf("message %d acknowledged at seq %d epoch %d; want seq %d epoch %d", n, pos[n].Seq, pos[n].Epoch, n, pos[1].Epoch)
		}
	}
	t.Logf("%d acknowledged publishes in %v", total, time.Since(start).Round(time.Millisecond))
	for n := 1; n <= total; n++ {
		sub.expectDurable("1", n, pos[n])
	}
	return pos
}

// expectDurable reads the next broadcast of durableTopic and requires it to
// be n, with join_ref jr, at the position it was published with.
func (c *wsClient) expectDurable(jr string, n int, at published) {
	c.t.Helper()
	d := c.readDelivery(durableTopic)
	if d.joinRef != jr || d.n != n || d.seq != at.Seq || d.epoch != at.Epoch {
		c.t.Fatalf("%s received %+v; want join_ref %s, n=%d, seq %d, epoch %d", c.name, d, jr, n, at.Seq, at.Epoch)
	}
}

// resumeAfterRestart joins durableTopic on gateway with since the position
// of message from, and checks that exactly from+1..total follow, then that
// a new publish gets seq total+1 in the same epoch and comes next.
func resumeAfterRestart(t *testing.T, gateway string, pos map[int]published, from, total int) {
	t.Helper()
	last := pos[from]
	c := dial(t, "resuming subscriber", gateway)
	c.send(fmt.Sprintf(`["2","2","%s","phx_join",{"since":%d,"epoch":"%d","meta":true}]`, durableTopic, last.Seq, last.Epoch))
	c.expect(fmt.Sprintf(`["2","2","%s","phx_reply",{"status":"ok","response":{"recovered":%d,"epoch":"%d","seq":%d}}]`,
		durableTopic, total-from, last.Epoch, last.Seq))
	for n := from + 1; n <= total; n++ {
		c.expectDurable("2", n, pos[n])
	}
	next := publishDurable(t, gateway, total+1)
	if next.Seq != uint64(total+1) || next.Epoch != last.Epoch {
		t.Fatalf("first publish after the restart acknowledged at seq %d epoch %d; want seq %d epoch %d", next.Seq, next.Epoch, total+1, last.Epoch)
	}
	// It is the next frame: nothing was delivered twice or out of turn.
	c.expectDurable("2", total+1, next)
}

// TestDurableRestartPostgres is a whole cluster (three topic servers and a
// gateway) on one PostgreSQL database, killed with SIGKILL after 1,000
// acknowledged publishes and restarted: a subscriber that had read up to
// message 400 resumes with its position and receives exactly 401..1000,
// in order, in the same epoch, and the next publish is 1001. Then the
// database stops: durable publishes fail with 503, memory-only ones go on.
func TestDurableRestartPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	store := []string{"--store", pg.URL(), "--durable", "cursor:*=memory; *=durable"}
	const total, from = 1000, 400

	c := startCluster(t, 1, 3, store...)
	for _, p := range c.topics {
		if got := p.waitReady()["store"]; got != pg.URL() { // no password to hide in it
			t.Fatalf("%s ready line says store=%v; want %s", p.label, got, pg.URL())
		}
	}
	// The pure gateway owns no topics, but opens the store for the
	// notification system (its accounts, subscriptions and read state).
	if got := c.gateways[0].waitReady()["store"]; got != pg.URL() {
		t.Fatalf("the pure gateway's ready line says store=%v; want %s (the notification system's)", got, pg.URL())
	}
	pos := durableRun(t, c.gateways[0].addr("listen"), total)

	killAll(t, append(c.gateways, c.topics...)...)
	restart := time.Now()
	again := startCluster(t, 1, 3, store...)
	t.Logf("cluster killed and restarted on the same database in %v", time.Since(restart).Round(time.Millisecond))
	gateway := again.gateways[0].addr("listen")
	resumeAfterRestart(t, gateway, pos, from, total)

	// With the database stopped, a publish to a durable topic fails with
	// 503 and is not acknowledged; memory-only topics go on.
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	status, _, err := publishN(gateway, durableTopic, "owner", total+2, testTimeout)
	if status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(err), "store") {
		t.Fatalf("publish with the database down: %d %v; want 503 saying the store is unavailable", status, err)
	}
	if status, p, err := publishN(gateway, "cursor:doc-1", "owner", 1, testTimeout); err != nil || p.Seq != 1 {
		t.Fatalf("publish to a memory-only topic with the database down: %d %+v %v", status, p, err)
	}
}

// TestDurableRestartSQLite runs one ringcast-ws with its defaults (no
// --store): the store is the SQLite file at the documented default path.
// Killed with SIGKILL and restarted, it resumes a subscriber exactly.
func TestDurableRestartSQLite(t *testing.T) {
	home := t.TempDir()
	// RINGCAST_STORE empty: unset, so the default applies.
	env := []string{"HOME=" + home, "XDG_STATE_HOME=", "RINGCAST_STORE="}
	const total, from = 60, 25
	run := func(label string) *proc {
		p := start(t, label, wsBinary, env, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0")
		want := "sqlite:" + filepath.Join(home, ".local", "state", "ringcast", "ringcast.db")
		if got := p.waitReady()["store"]; got != want {
			t.Fatalf("%s ready line says store=%v; want %s", label, got, want)
		}
		return p
	}
	first := run("ringcast-ws")
	pos := durableRun(t, first.addr("listen"), total)
	killAll(t, first)
	if _, err := os.Stat(filepath.Join(home, ".local", "state", "ringcast", "ringcast.db")); err != nil {
		t.Fatalf("the default store file: %v", err)
	}
	second := run("ringcast-ws again")
	resumeAfterRestart(t, second.addr("listen"), pos, from, total)

	// With XDG_STATE_HOME the default file moves there.
	state := t.TempDir()
	p := start(t, "ringcast-ws with XDG_STATE_HOME", wsBinary, []string{"HOME=" + home, "XDG_STATE_HOME=" + state, "RINGCAST_STORE="},
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0")
	if got, want := p.waitReady()["store"], "sqlite:"+filepath.Join(state, "ringcast", "ringcast.db"); got != want {
		t.Fatalf("with XDG_STATE_HOME the ready line says store=%v; want %s", got, want)
	}
}

// TestStoreRefusedAtStart: a store that is not ringcast's, or that cannot
// be reached, ends the process at start with status 1 and one line on
// stderr, and a refused file is left byte for byte as it was.
func TestStoreRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	junk := make([]byte, 8192)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	// A valid SQLite database of another application.
	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5)`)
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatalf("creating %s: %v %v", foreign, err, cerr)
	}

	for _, file := range []string{garbage, foreign} {
		before, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for bin, args := range map[string][]string{
			wsBinary:    {"--listen", "127.0.0.1:0", "--store", file},
			topicBinary: {"--store", "sqlite:" + file},
		} {
			code, _, stderr := runOnce(t, bin, nil, append(args, "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0")...)
			want := bin + ": store sqlite:" + file + " refused, left unchanged: "
			if code != 1 || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "not a ringcast store") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%s with --store %s: status %d, stderr %q; want 1 and one line starting %q", bin, filepath.Base(file), code, stderr, want)
			}
			after, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("%s changed %s", bin, file)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the directory holds %v; want only the two refused files", names)
	}

	// PostgreSQL that does not answer: status 1, one line, no password.
	url := fmt.Sprintf("postgres://ringcast:s3cret-pw@127.0.0.1:%d/ringcast", freePort(t))
	code, _, stderr := runOnce(t, topicBinary, []string{"RINGCAST_STORE=" + url, "RINGCAST_STORE_TIMEOUT=2s"},
		"--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0")
	want := topicBinary + ": store postgres://ringcast:xxxxx@127.0.0.1:"
	if code != 1 || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "cannot be reached") ||
		strings.Contains(stderr, "s3cret") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("unreachable PostgreSQL: status %d, stderr %q; want 1 and one line starting %q, without the password", code, stderr, want)
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago: nothing
// answers there.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
