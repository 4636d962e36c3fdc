package inbox_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// phoenixJS returns the directory holding node_modules/phoenix and
// node_modules/ws (env RINGCAST_PHOENIX_JS) and the node binary. Without it
// the test is skipped, unless env CI is set: CI must run it.
func phoenixJS(t *testing.T) (dir, node string) {
	t.Helper()
	dir = os.Getenv("RINGCAST_PHOENIX_JS")
	if dir == "" {
		const msg = "RINGCAST_PHOENIX_JS is not set: point it at a directory where `npm install phoenix@1.8 ws@8` ran to test the official Phoenix client"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, mod := range []string{"phoenix", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", mod, "package.json")); err != nil {
			t.Fatalf("RINGCAST_PHOENIX_JS=%s lacks node_modules/%s: %v", dir, mod, err)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("RINGCAST_PHOENIX_JS is set but node is not installed: %v", err)
	}
	return dir, node
}

// TestOfficialPhoenixClientInbox runs the official Phoenix JavaScript
// client as two devices of one user, one connected with params: {token},
// the other with authToken: both get a notification and its count live,
// a read on one reaches the other at once, and a reconnect with the last
// positions brings exactly the notifications missed meanwhile.
func TestOfficialPhoenixClientInbox(t *testing.T) {
	dir, node := phoenixJS(t)
	sys := newSystem(t)
	nd := sys.start(nil)
	alice := sys.user("alice")
	bob := sys.user("bob")
	sys.topic("alice", "news")
	sys.subscribe("bob", "news")
	sys.publish("alice", "news", `{"title":"before"}`)

	script, err := filepath.Abs(filepath.Join("testdata", "phoenix_inbox.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, nd.srv.URL, bob, alice, "news", "bob")
	cmd.Env = append(os.Environ(), "RINGCAST_PHOENIX_JS="+dir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("phoenix client: %v\n%s", err, out)
	}
	const want = "PHOENIX_INBOX_OK joined,notified,read-elsewhere,rejoined"
	if !strings.Contains(string(out), want) {
		t.Fatalf("phoenix client output lacks %q:\n%s", want, out)
	}
	in, err := sys.svc.Inbox(ctxT(t), "bob")
	if err != nil || in.Unread != 2 || in.Topics[0].ReadSeq != 2 {
		t.Fatalf("database inbox %+v %v", in, err)
	}
	waitFor(t, "the sessions to end", func() bool { return nd.ch.Stats().Sessions == 0 })
}
