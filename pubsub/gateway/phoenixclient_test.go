package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub/gateway/gatewaytest"
)

// TestOfficialPhoenixClient runs the official Phoenix JavaScript client
// against the gateway: it authenticates with a token, joins, publishes and
// receives its broadcast, gets an error reply, publishes binary data, opts in
// to metadata, keeps up 200 ms heartbeats and leaves. A Go client on the same
// topic sees the same broadcasts.
func TestOfficialPhoenixClient(t *testing.T) {
	js := gatewaytest.FindPhoenixJS(t)
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

	script := filepath.Join("testdata", "phoenix_client.mjs")
	socketURL := "ws://" + g.srv.Listener.Addr().String() + strings.TrimSuffix(socketPath, "/websocket")
	js.Run(t, 40*time.Second, "PHOENIX_CLIENT_OK joined,published,error-reply,binary,meta,heartbeats,left", script, socketURL, "js-secret")

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
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := js.Command(t, ctx, script, socketURL, "wrong").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "FAIL: socket error") {
		t.Fatalf("phoenix client with a wrong token: %v\n%s", err, out)
	}
}

// TestOfficialPhoenixClientRejoins drops the official client's connection:
// it reconnects by itself, rejoins its channel with a new join_ref, and
// publishes and receives again.
func TestOfficialPhoenixClientRejoins(t *testing.T) {
	js := gatewaytest.FindPhoenixJS(t)
	g := newGateway(t, NewMemoryBroker(), nil)
	observer := g.dial()
	observer.join("1", "topics:rejoin")
	socketURL := "ws://" + g.srv.Listener.Addr().String() + strings.TrimSuffix(socketPath, "/websocket")
	js.Run(t, 40*time.Second, "PHOENIX_RECONNECT_OK opens=2", filepath.Join("testdata", "phoenix_reconnect.mjs"), socketURL)
	observer.expect(`["1",null,"topics:rejoin","e",{"n":1}]`)
	observer.expect(`["1",null,"topics:rejoin","e",{"n":2}]`)
	if s := g.h.Stats(); s.Accepted < 3 {
		t.Fatalf("%d connections accepted, want the observer and two from the client", s.Accepted)
	}
}
