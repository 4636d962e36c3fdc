package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/store"
)

func TestParseStoreSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want StoreSpec
		show string
	}{
		{"memory", StoreSpec{Kind: StoreMemory}, "memory"},
		{" MEMORY ", StoreSpec{Kind: StoreMemory}, "memory"},
		{"/var/lib/ringcast/r.db", StoreSpec{Kind: StoreSQLite, Path: "/var/lib/ringcast/r.db"}, "sqlite:/var/lib/ringcast/r.db"},
		{"data/r.db", StoreSpec{Kind: StoreSQLite, Path: "data/r.db"}, "sqlite:data/r.db"},
		{"sqlite:/x/r.db", StoreSpec{Kind: StoreSQLite, Path: "/x/r.db"}, "sqlite:/x/r.db"},
		{"sqlite:///x/r.db", StoreSpec{Kind: StoreSQLite, Path: "/x/r.db"}, "sqlite:/x/r.db"},
		{"postgres://rc:pw@db:5432/rc?sslmode=require", StoreSpec{Kind: StorePostgres, URL: "postgres://rc:pw@db:5432/rc?sslmode=require"},
			"postgres://rc:xxxxx@db:5432/rc?sslmode=require"},
		{"postgresql://db/rc?password=pw&user=rc", StoreSpec{Kind: StorePostgres, URL: "postgresql://db/rc?password=pw&user=rc"},
			"postgresql://db/rc?password=xxxxx&user=rc"},
		{"postgres://db/rc", StoreSpec{Kind: StorePostgres, URL: "postgres://db/rc"}, "postgres://db/rc"},
	} {
		got, err := ParseStoreSpec(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseStoreSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.show {
			t.Errorf("ParseStoreSpec(%q).String() = %q; want %q", tc.in, s, tc.show)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"sqlite:", "without a path"},
		{"mysql://u:pw@db/x", `unknown store scheme "mysql"`},
	} {
		_, err := ParseStoreSpec(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseStoreSpec(%q) = %v; want an error saying %q without the password", tc.in, err, tc.want)
		}
	}
	if got := (StoreSpec{}).String(); got != "sqlite:(default)" {
		t.Errorf("the default store shows as %q", got)
	}
}

func TestDefaultStorePath(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/state"}, "/state/ringcast/ringcast.db"},
		{map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/ringcast/ringcast.db"},
		{map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "relative"}, "/home/u/.local/state/ringcast/ringcast.db"},
	} {
		got, err := DefaultStorePath(env(tc.vars))
		if err != nil || got != tc.want {
			t.Errorf("DefaultStorePath(%v) = %q, %v; want %q", tc.vars, got, err, tc.want)
		}
	}
	if _, err := DefaultStorePath(env(nil)); err == nil || !strings.Contains(err.Error(), "--store") {
		t.Errorf("DefaultStorePath without a home = %v; want an error telling to give --store", err)
	}
}

func TestStoreFlags(t *testing.T) {
	c, _, _, _ := testCommand()
	if err := c.Parse(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	if c.Common.Store != (StoreSpec{}) || c.Common.StoreTimeout != pubsub.DefaultStoreTimeout ||
		pubsub.FormatDurability(c.Common.Durable) != DefaultDurable {
		t.Fatalf("defaults: store %+v, timeout %v, durable %q", c.Common.Store, c.Common.StoreTimeout, pubsub.FormatDurability(c.Common.Durable))
	}

	c, _, _, _ = testCommand()
	err := c.Parse([]string{"--durable", "cursor:*=memory; *=durable age=720h count=1000"}, env(map[string]string{
		"RINGCAST_STORE":         "postgresql://rc:pw@db/rc",
		"RINGCAST_STORE_TIMEOUT": "2s",
		"RINGCAST_DURABLE":       "*=memory",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []pubsub.Durability{{Pattern: "cursor:*", Memory: true}, {Pattern: "*", MaxAge: 720 * time.Hour, MaxCount: 1000}}
	if c.Common.Store.Kind != StorePostgres || c.Common.StoreTimeout != 2*time.Second ||
		pubsub.FormatDurability(c.Common.Durable) != pubsub.FormatDurability(want) {
		t.Fatalf("parsed store %+v, timeout %v, durable %+v", c.Common.Store, c.Common.StoreTimeout, c.Common.Durable)
	}

	// Bad values are refused while parsing, naming the rule, never
	// repeating a password.
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{args: []string{"--durable", "a=durable; b=keep"}, want: `durability rule 2 ("b=keep"): unknown mode "keep"`},
		{vars: map[string]string{"RINGCAST_DURABLE": "x=memory count=3"}, want: "a memory rule keeps nothing in the store"},
		{args: []string{"--store", "mysql://root:hunter2@db/x"}, want: `invalid value "mysql://root:xxxxx@db/x" for flag -store`},
		{vars: map[string]string{"RINGCAST_STORE": "redis://:hunter2@db"}, want: `invalid value "redis://:xxxxx@db" for RINGCAST_STORE`},
		{args: []string{"--store-timeout", "0s"}, want: "not positive"},
	} {
		c, _, _, _ := testCommand()
		err := c.Parse(tc.args, env(tc.vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q, %v) = %v; want an error with %q and no password", tc.args, tc.vars, err, tc.want)
		}
	}
}

func TestNeedsStore(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		want  bool
	}{
		{nil, true},
		{[]string{pubsub.RoleTopics}, true},
		{[]string{pubsub.RoleGateway, pubsub.RoleTopics}, true},
		{[]string{pubsub.RoleGateway}, false},
	} {
		if got := NeedsStore(tc.roles); got != tc.want {
			t.Errorf("NeedsStore(%v) = %v", tc.roles, got)
		}
	}
}

// runMain runs a command through Main, starting a node with roles, until
// it is ready, then stops it with SIGTERM (which Main catches), and
// returns its status, stdout and logs.
func runMain(t *testing.T, args []string, vars map[string]string, roles []string) (int, string, string) {
	t.Helper()
	c := NewCommand("ringcast-test", "")
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- c.Main(append([]string{"--log-format", "json"}, args...), env(vars), &stdout, &stderr, func(e *Env) error {
			n, err := e.StartNode(roles)
			if err != nil {
				return err
			}
			return e.Serve(Service{Node: n})
		})
	}()
	waitFor(t, testTimeout, "ready or exit", func() bool {
		return strings.Contains(stderr.String(), `"msg":"ringcast-test ready"`) || len(done) > 0
	})
	if strings.Contains(stderr.String(), `"msg":"ringcast-test ready"`) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case code := <-done:
		return code, stdout.String(), stderr.String()
	case <-time.After(testTimeout):
		t.Fatal("Main did not return")
	}
	return 0, "", ""
}

// readyAttrs returns the attributes of the ready line in logs.
func readyAttrs(t *testing.T, logs string) map[string]any {
	t.Helper()
	for line := range strings.Lines(logs) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "ringcast-test ready" {
			return m
		}
	}
	t.Fatalf("no ready line in:\n%s", logs)
	return nil
}

// TestMainStore: the default SQLite store is opened before the node, named
// in the ready line, and closed after the node shut down (a second process
// can open it, and finds the topic where the first left it); a gateway-only
// node opens none; --store memory opens none.
func TestMainStore(t *testing.T) {
	home := t.TempDir()
	vars := map[string]string{"HOME": home}
	path := filepath.Join(home, ".local", "state", "ringcast", "ringcast.db")

	var (
		published pubsub.PublishResult
		pubErr    error
	)
	c := NewCommand("ringcast-test", "")
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- c.Main([]string{"--log-format", "json", "--durable", "cursor:*=memory; *=durable count=100"}, env(vars), &stdout, &stderr, func(e *Env) error {
			n, err := e.StartNode(nil)
			if err != nil {
				return err
			}
			published, pubErr = n.Publish(context.Background(), "orders", []byte("1"))
			if e.store == nil {
				return errors.New("no store opened")
			}
			return e.Serve(Service{Node: n})
		})
	}()
	waitFor(t, testTimeout, "ready", func() bool { return strings.Contains(stderr.String(), `"msg":"ringcast-test ready"`) })
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 || pubErr != nil {
		t.Fatalf("status %d, publish %v:\n%s", code, pubErr, stderr.String())
	}
	ready := readyAttrs(t, stderr.String())
	if ready["store"] != "sqlite:"+path || ready["durable"] != "cursor:*=memory; *=durable count=100" {
		t.Fatalf("ready line %v; want store sqlite:%s and the rules", ready, path)
	}
	if !strings.Contains(stderr.String(), `"msg":"store opened"`) {
		t.Errorf("no store opened line:\n%s", stderr.String())
	}

	// The store was closed: another Main opens it and the topic goes on.
	var next pubsub.PublishResult
	c = NewCommand("ringcast-test", "")
	stderr = syncBuffer{}
	go func() {
		done <- c.Main(nil, env(vars), &stdout, &stderr, func(e *Env) error {
			n, err := e.StartNode([]string{pubsub.RoleGateway, pubsub.RoleTopics})
			if err != nil {
				return err
			}
			next, err = n.Publish(context.Background(), "orders", []byte("2"))
			return errors.Join(err, n.Shutdown(context.Background()))
		})
	}()
	if code := <-done; code != 0 {
		t.Fatalf("second run: status %d:\n%s", code, stderr.String())
	}
	if next.Epoch != published.Epoch || next.Seq != published.Seq+1 {
		t.Fatalf("after a restart the topic went on at %+v; want epoch %d seq %d", next, published.Epoch, published.Seq+1)
	}

	// A gateway-only node and --store memory open no store.
	for _, tc := range []struct {
		args  []string
		roles []string
		want  string
	}{
		{nil, []string{pubsub.RoleGateway}, "none (gateway role only)"},
		{[]string{"--store", "memory"}, nil, "memory"},
	} {
		code, _, logs := runMain(t, tc.args, map[string]string{}, tc.roles)
		if code != 0 {
			t.Fatalf("%v %v: status %d:\n%s", tc.args, tc.roles, code, logs)
		}
		if got := readyAttrs(t, logs)["store"]; got != tc.want {
			t.Errorf("%v %v: ready line store=%v; want %s", tc.args, tc.roles, got, tc.want)
		}
		if strings.Contains(logs, "store opened") {
			t.Errorf("%v %v opened a store:\n%s", tc.args, tc.roles, logs)
		}
	}
}

// TestMainStoreRefused: a file that is not a ringcast store ends Main with
// status 1 and one line, before the node starts, and is left unchanged;
// so does a PostgreSQL that does not answer, without its password.
func TestMainStoreRefused(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.db")
	content := bytes.Repeat([]byte("not a database "), 500)
	if err := os.WriteFile(bad, content, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, tc := range []struct {
		store string
		want  string
		is    error
	}{
		{bad, "ringcast-test: store sqlite:" + bad + " refused, left unchanged: ", store.ErrNotRingcast},
		{fmt.Sprintf("postgres://rc:hunter2@127.0.0.1:%d/rc", port), fmt.Sprintf("ringcast-test: store postgres://rc:xxxxx@127.0.0.1:%d/rc cannot be reached: ", port), store.ErrUnavailable},
	} {
		c := NewCommand("ringcast-test", "")
		var stdout, stderr syncBuffer
		var startErr error
		code := c.Main([]string{"--store", tc.store, "--store-timeout", "2s"}, env(nil), &stdout, &stderr, func(e *Env) error {
			_, startErr = e.StartNode(nil)
			return startErr
		})
		got := stderr.String()
		if code != 1 || !strings.HasPrefix(got, tc.want) || strings.Count(got, "\n") != 1 || strings.Contains(got, "hunter2") {
			t.Errorf("--store %s: status %d, stderr %q; want 1 and one line starting %q", RedactURL(tc.store), code, got, tc.want)
		}
		if !errors.Is(startErr, tc.is) {
			t.Errorf("--store %s: StartNode = %v; want it to wrap %v", RedactURL(tc.store), startErr, tc.is)
		}
		if strings.Contains(got, "node started") {
			t.Errorf("the node started before the store was refused:\n%s", got)
		}
	}
	if after, err := os.ReadFile(bad); err != nil || !bytes.Equal(after, content) {
		t.Fatalf("the refused file changed (%v)", err)
	}
}
