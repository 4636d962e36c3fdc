package gatewaytest_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/pubsub/gateway/gatewaytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCommand: the command runs node on the script's absolute path with
// the arguments, RINGCAST_PHOENIX_JS naming the installation, and a bound
// on the wait for its output once killed.
func TestCommand(t *testing.T) {
	js := &gatewaytest.PhoenixJS{Dir: "/opt/phoenix-js", Node: "/usr/local/bin/node"}
	cmd := js.Command(t, context.Background(), filepath.Join("testdata", "client.mjs"), "ws://127.0.0.1:1/socket", "token")
	abs, err := filepath.Abs(filepath.Join("testdata", "client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/usr/local/bin/node", abs, "ws://127.0.0.1:1/socket", "token"}; cmd.Path != js.Node || !slices.Equal(cmd.Args, want) {
		t.Errorf("command %s %q; want %s %q", cmd.Path, cmd.Args, js.Node, want)
	}
	if !slices.Contains(cmd.Env, gatewaytest.EnvPhoenixJS+"=/opt/phoenix-js") {
		t.Errorf("environment lacks %s=/opt/phoenix-js", gatewaytest.EnvPhoenixJS)
	}
	if cmd.WaitDelay <= 0 {
		t.Errorf("WaitDelay %v; want a bound", cmd.WaitDelay)
	}
}
