package gatewaytest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvPhoenixJS names the environment variable holding the directory where
// the official Phoenix client and the ws package are installed.
const EnvPhoenixJS = "RINGCAST_PHOENIX_JS"

// waitDelay bounds the wait for a script's output once it was killed.
const waitDelay = 5 * time.Second

// PhoenixJS is a Node.js installation with the official Phoenix client.
type PhoenixJS struct {
	Dir  string // holds node_modules/phoenix and node_modules/ws
	Node string // the node binary
}

// FindPhoenixJS returns the installation named by RINGCAST_PHOENIX_JS.
// Without the variable it skips the test, or fails it if the variable CI
// is set. It fails the test if the directory lacks a module or node is
// not installed. Call it before starting anything the test needs.
func FindPhoenixJS(t testing.TB) *PhoenixJS {
	t.Helper()
	dir := os.Getenv(EnvPhoenixJS)
	if dir == "" {
		const msg = EnvPhoenixJS + " is not set: point it at a directory where `npm install phoenix@1.8 ws@8` ran to test the official Phoenix client"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, mod := range []string{"phoenix", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", mod, "package.json")); err != nil {
			t.Fatalf("%s=%s lacks node_modules/%s: %v", EnvPhoenixJS, dir, mod, err)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("%s is set but node is not installed: %v", EnvPhoenixJS, err)
	}
	return &PhoenixJS{Dir: dir, Node: node}
}

// Command returns a command running script (a path relative to the test's
// directory, or absolute) with args and RINGCAST_PHOENIX_JS in its
// environment. The process is killed when ctx ends; its output is then
// waited for at most a few seconds.
func (p *PhoenixJS) Command(t testing.TB, ctx context.Context, script string, args ...string) *exec.Cmd {
	t.Helper()
	abs, err := filepath.Abs(script)
	if err != nil {
		t.Fatalf("script %s: %v", script, err)
	}
	cmd := exec.CommandContext(ctx, p.Node, append([]string{abs}, args...)...)
	cmd.Env = append(os.Environ(), EnvPhoenixJS+"="+p.Dir)
	cmd.WaitDelay = waitDelay
	return cmd
}

// Run runs script with args to its end, killing it after timeout, and
// returns its combined output. It fails the test unless the script exits
// with status 0 and its output contains want.
func (p *PhoenixJS) Run(t testing.TB, timeout time.Duration, want, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := p.Command(t, ctx, script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("phoenix client %s: %v\n%s", filepath.Base(script), err, out)
	}
	if !strings.Contains(string(out), want) {
		t.Fatalf("phoenix client %s: output lacks %q:\n%s", filepath.Base(script), want, out)
	}
	return string(out)
}
