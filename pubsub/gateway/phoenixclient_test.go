package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// phoenixJSDir returns the directory holding node_modules/phoenix and
// node_modules/ws (env RINGCAST_PHOENIX_JS) and the node binary. Without it
// the test is skipped, unless env CI is set: CI must run it.
func phoenixJSDir(t *testing.T) (dir, node string) {
	t.Helper()
	dir = os.Getenv("RINGCAST_PHOENIX_JS")
	if dir == "" {
		const msg = "RINGCAST_PHOENIX_JS is not set: point it at a directory where `npm install phoenix@1.8 ws` ran to test the official Phoenix client"
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

// TestOfficialPhoenixClient runs the official Phoenix JavaScript client
// against the gateway: it authenticates with a token, joins, publishes and
// receives its broadcast, gets an error reply, publishes binary data, opts in
// to metadata, keeps up 200 ms heartbeats and leaves. A Go client on the same
// topic sees the same broadcasts.
func TestOfficialPhoenixClient(t *testing.T) {
	dir, node := phoenixJSDir(t)
	b := newCountingBroker()
	g := newGateway(t, b, &Options{
		Authenticate: func(_ *http.Request, token string) error {
			if token != "js-secret" {
				return errors.New("bad token")
			}
			return nil
		},
	})
	observer := dialURL(t, g.url, &cws.DialOptions{
		Subprotocols: []string{"phoenix", authTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte("js-secret"))},
	})
	observer.join("1", "topics:js")

	script, err := filepath.Abs(filepath.Join("testdata", "phoenix_client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	socketURL := "ws://" + g.srv.Listener.Addr().String() + strings.TrimSuffix(socketPath, "/websocket")
	cmd := exec.CommandContext(ctx, node, script, socketURL, "js-secret")
	cmd.Env = append(os.Environ(), "RINGCAST_PHOENIX_JS="+dir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("phoenix client: %v\n%s", err, out)
	}
	const want = "PHOENIX_CLIENT_OK joined,published,error-reply,binary,meta,heartbeats,left"
	if !strings.Contains(string(out), want) {
		t.Fatalf("phoenix client output lacks %q:\n%s", want, out)
	}

	observer.expect(`["1",null,"topics:js","greeting",{"message":"hi","n":1}]`)
	observer.expectBinary(binaryServerPush("1", "topics:js", "bin", []byte{1, 2, 3, 250}))
	waitFor(t, testTimeout, "the JS client's connection to end", func() bool {
		s := g.h.Stats()
		return s.Connections == 1 && s.Topics == 1
	})
	if _, unsubs := b.counts("topics:js-meta"); unsubs != 1 {
		t.Fatalf("the JS client's meta topic was not unsubscribed")
	}

	// A wrong token is refused before the upgrade, and the client says so.
	cmd = exec.CommandContext(ctx, node, script, socketURL, "wrong")
	cmd.Env = append(os.Environ(), "RINGCAST_PHOENIX_JS="+dir)
	cmd.WaitDelay = 5 * time.Second
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "FAIL: socket error") {
		t.Fatalf("phoenix client with a wrong token: %v\n%s", err, out)
	}
}

// TestOfficialPhoenixClientRejoins drops the official client's connection:
// it reconnects by itself, rejoins its channel with a new join_ref, and
// publishes and receives again.
func TestOfficialPhoenixClientRejoins(t *testing.T) {
	dir, node := phoenixJSDir(t)
	g := newGateway(t, NewMemoryBroker(), nil)
	observer := g.dial()
	observer.join("1", "topics:rejoin")
	script, err := filepath.Abs(filepath.Join("testdata", "phoenix_reconnect.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	socketURL := "ws://" + g.srv.Listener.Addr().String() + strings.TrimSuffix(socketPath, "/websocket")
	cmd := exec.CommandContext(ctx, node, script, socketURL)
	cmd.Env = append(os.Environ(), "RINGCAST_PHOENIX_JS="+dir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("phoenix client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PHOENIX_RECONNECT_OK opens=2") {
		t.Fatalf("phoenix client output:\n%s", out)
	}
	observer.expect(`["1",null,"topics:rejoin","e",{"n":1}]`)
	observer.expect(`["1",null,"topics:rejoin","e",{"n":2}]`)
	if s := g.h.Stats(); s.Accepted < 3 {
		t.Fatalf("%d connections accepted, want the observer and two from the client", s.Accepted)
	}
}
