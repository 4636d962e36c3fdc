package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"go.uber.org/goleak"
)

const (
	testTimeout = 20 * time.Second
	// shutdownTimeout is the --shutdown-timeout every process gets.
	shutdownTimeout = 10 * time.Second
	wsBinary        = "ringcast-ws"
	topicBinary     = "ringcast-topic"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	// Every process, client and publisher a test started has been stopped.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// binary returns the path of one of the two binaries, building both (once
// per test run, with -race when the tests have it) on first use.
func binary(t testing.TB, name string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the process tests stop processes with SIGTERM")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "ringcast-bin-")
		if buildErr != nil {
			return
		}
		gobin, err := goTool()
		if err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", binDir + string(filepath.Separator)}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/ringcast/ringcast/cmd/"+wsBinary, "github.com/ringcast/ringcast/cmd/"+topicBinary)
		out, err := exec.Command(gobin, args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the binaries: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

// goTool finds the go command that runs these tests.
func goTool() (string, error) {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("go")
}

// childEnv is the test's environment without RINGCAST_ variables, plus
// extra, which wins over what comes before it. Race-enabled binaries exit
// without the race detector's default one-second pause.
//
// Processes get RINGCAST_STORE=memory: the tests written for memory-only
// topics stay so, and the durable ones give --store (a flag wins over the
// variable) or RINGCAST_STORE= (empty: the default). XDG_STATE_HOME points
// into a directory of the test run's own, so that no process ever writes
// the default store of the user running the tests.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RINGCAST_") && !strings.HasPrefix(kv, "GORACE=") && !strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			env = append(env, kv)
		}
	}
	if raceEnabled {
		env = append(env, strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	env = append(env, "RINGCAST_STORE=memory")
	if binDir != "" {
		env = append(env, "XDG_STATE_HOME="+filepath.Join(binDir, "state"))
	}
	return append(env, extra...)
}

// proc is one running binary. Its stderr (the JSON logs) is collected line
// by line; the "<binary> ready" line is parsed for the addresses.
type proc struct {
	t     testing.TB
	label string
	name  string // the binary's name
	cmd   *exec.Cmd

	mu    sync.Mutex
	lines []string

	ready   chan map[string]any
	exited  chan struct{}
	waitErr error     // set before exited is closed
	exitAt  time.Time // set before exited is closed
}

// start runs a binary with --log-format json and the given arguments, and
// stops it when the test ends. It does not wait for it to be ready.
func start(t testing.TB, label, name string, env []string, args ...string) *proc {
	t.Helper()
	bin := binary(t, name)
	p := &proc{
		t:      t,
		label:  label,
		name:   name,
		cmd:    exec.Command(bin, append([]string{"--log-format", "json"}, args...)...),
		ready:  make(chan map[string]any, 1),
		exited: make(chan struct{}),
	}
	p.cmd.Env = childEnv(env...)
	p.cmd.Stdout = io.Discard
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	go p.collect(stderr)
	t.Cleanup(p.stop)
	return p
}

// collect reads the process's stderr until it exits, then waits for it.
func (p *proc) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sentReady := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		if sentReady {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == p.name+" ready" {
			p.ready <- m
			sentReady = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
	p.waitErr = p.cmd.Wait()
	p.exitAt = time.Now()
	close(p.exited)
}

// waitReady returns the attributes of the ready line.
func (p *proc) waitReady() map[string]any {
	p.t.Helper()
	select {
	case m := <-p.ready:
		p.ready <- m // keep it for later calls
		return m
	case <-p.exited:
		p.t.Fatalf("%s exited before it was ready (%v):\n%s", p.label, p.waitErr, p.logs())
	case <-time.After(testTimeout):
		p.t.Fatalf("%s not ready after %v:\n%s", p.label, testTimeout, p.logs())
	}
	return nil
}

// addr returns an address from the ready line ("listen", "http", "gossip", "peer").
func (p *proc) addr(key string) string {
	p.t.Helper()
	s, _ := p.waitReady()[key].(string)
	if s == "" {
		p.t.Fatalf("%s ready line has no %q", p.label, key)
	}
	return s
}

// nodeName returns the node's name from the ready line.
func (p *proc) nodeName() string { return p.addr("name") }

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.label, err)
	}
}

// waitExit waits up to timeout for the process to exit and returns its
// exit status and when it exited.
func (p *proc) waitExit(timeout time.Duration) (int, time.Time) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v:\n%s", p.label, timeout, p.logs())
	}
	return p.cmd.ProcessState.ExitCode(), p.exitAt
}

// stop ends the process by its PID: SIGTERM, then SIGKILL if it has not
// exited within the shutdown timeout and a margin. It reports data races
// the process found.
func (p *proc) stop() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(shutdownTimeout + 5*time.Second):
			p.t.Errorf("%s ignored SIGTERM; killing it", p.label)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	logs := p.logs()
	if strings.Contains(logs, "WARNING: DATA RACE") {
		p.t.Errorf("%s reported a data race:\n%s", p.label, logs)
	} else if p.t.Failed() {
		p.t.Logf("logs of %s:\n%s", p.label, logs)
	}
}

// runOnce runs a binary to completion (it must exit on its own) and returns
// its exit status, stdout and stderr.
func runOnce(t testing.TB, name string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, name), args...)
	cmd.Env = childEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %s %q: %v", name, args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpClient keeps no idle connections: processes stop cleanly.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testTimeout}

// httpDo sends a request and returns the status and body; err is set only
// when no response came.
func httpDo(method, url, body string) (int, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// getJSON GETs url, requires 200, and decodes the body into v.
func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	status, body, err := httpDo("GET", url, "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s = %d %s %v", url, status, body, err)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: decoding %s: %v", url, body, err)
	}
}

// clusterInfo is the body of GET /api/cluster.
type clusterInfo struct {
	Node    string `json:"node"`
	Members []struct {
		Name   string   `json:"name"`
		Roles  []string `json:"roles"`
		Gossip string   `json:"gossip"`
		Peer   string   `json:"peer"`
		Share  float64  `json:"share"`
	} `json:"members"`
}

// topicState is the body of GET /api/topics/{topic}.
type topicState struct {
	Topic string `json:"topic"`
	Owner string `json:"owner"`
	Epoch uint64 `json:"epoch,string"`
	Seq   uint64 `json:"seq"`
}

// wsClient is a Phoenix V2 text client.
type wsClient struct {
	t    testing.TB
	name string
	ws   *cws.Conn
}

// dial connects to a gateway's Phoenix socket, as websocat does.
func dial(t testing.TB, name, httpAddr string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	url := "ws://" + httpAddr + "/socket/websocket?vsn=2.0.0"
	ws, resp, err := cws.Dial(ctx, url, &cws.DialOptions{HTTPClient: httpClient})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, url, err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &wsClient{t: t, name: name, ws: ws}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("%s: send %s: %v", c.name, msg, err)
	}
}

func (c *wsClient) read() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	if typ != cws.MessageText {
		c.t.Fatalf("%s: got a %v message %q", c.name, typ, data)
	}
	return string(data)
}

// expect reads one message and requires it to be exactly want.
func (c *wsClient) expect(want string) {
	c.t.Helper()
	if got := c.read(); got != want {
		c.t.Fatalf("%s got  %s\n%s want %s", c.name, got, strings.Repeat(" ", len(c.name)), want)
	}
}

// expectSkipping reads until want, accepting before it only messages that
// skip allows.
func (c *wsClient) expectSkipping(want string, skip func(string) bool) {
	c.t.Helper()
	for {
		got := c.read()
		if got == want {
			return
		}
		if !skip(got) {
			c.t.Fatalf("%s got  %s\n%s want %s", c.name, got, strings.Repeat(" ", len(c.name)), want)
		}
	}
}
