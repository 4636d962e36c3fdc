package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Network namespaces for process-level tests. A test creates its own
// namespaces (named after the test process's PID, so a later run can find
// and delete those of a run that crashed), joins them with a veth pair,
// gives addresses to the interfaces inside them only, and runs the binaries
// in them with "ip netns exec". The test process itself stays outside and
// reaches the processes' HTTP addresses through a small proxy that it runs
// in each namespace: the proxy listens on Unix sockets, which belong to the
// file system and not to a network namespace, and forwards each connection
// to an address inside its namespace.

const (
	// nsPrefix starts the name of every namespace and interface the tests
	// create: nsPrefix, the PID of the test process, then a letter.
	nsPrefix = "rcs"
	// nsProxyEnv tells the test binary to run as a proxy: its value is a
	// comma-separated list of socket=host:port.
	nsProxyEnv = "RINGCAST_TEST_NETNS_PROXY"
)

// A test binary started with nsProxyEnv set is a proxy, not a test run.
func init() {
	if spec := os.Getenv(nsProxyEnv); spec != "" {
		os.Exit(runNSProxy(spec))
	}
}

// runNSProxy serves the socket=address pairs of spec until SIGTERM or until
// its standard input ends (the test that started it is gone).
func runNSProxy(spec string) int {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	var lns []net.Listener
	for pair := range strings.SplitSeq(spec, ",") {
		sock, addr, ok := strings.Cut(pair, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "netns proxy: bad pair %q\n", pair)
			return 2
		}
		ln, err := net.Listen("unix", sock)
		if err != nil {
			fmt.Fprintf(os.Stderr, "netns proxy: %v\n", err)
			return 1
		}
		lns = append(lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go proxyConn(c, addr)
			}
		}()
	}
	fmt.Println("proxy ready")
	<-stop
	for _, ln := range lns {
		_ = ln.Close()
	}
	return 0
}

// proxyConn copies between c and a new connection to addr until either
// side closes.
func proxyConn(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// netnsPair is two network namespaces joined by a veth pair, each end with
// an address of 10.210.0.0/24 (which exists only inside them).
type netnsPair struct {
	t     testing.TB
	ns    [2]string // namespace names
	veth  [2]string // the veth end inside each namespace
	addr  [2]string // the address of each end
	socks string    // directory of the proxies' Unix sockets

	// hosts maps a host name used in URLs to the Unix socket of a proxy.
	mu    sync.Mutex
	hosts map[string]string
}

// nsRun runs ip with args and returns its combined output.
func nsRun(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// newNetnsPair creates the namespaces, or skips the test where they cannot
// be created. They are deleted, by name, when the test ends.
func newNetnsPair(t testing.TB) *netnsPair {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces need Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: run the tests as root to run this one")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need the ip command (iproute2), which is not installed")
	}
	deleteStaleNetns(t)
	id := nsPrefix + strconv.Itoa(os.Getpid())
	p := &netnsPair{
		t:     t,
		ns:    [2]string{id + "a", id + "b"},
		veth:  [2]string{id + "va", id + "vb"},
		addr:  [2]string{"10.210.0.1", "10.210.0.2"},
		hosts: map[string]string{},
	}
	p.delete() // a namespace of this PID left by an earlier run in this process
	t.Cleanup(p.delete)
	if _, err := nsRun("netns", "add", p.ns[0]); err != nil {
		t.Skipf("network namespaces are not available here: %v", err)
	}
	steps := [][]string{
		{"netns", "add", p.ns[1]},
		{"link", "add", p.veth[0], "netns", p.ns[0], "type", "veth", "peer", "name", p.veth[1], "netns", p.ns[1]},
	}
	for i := range 2 {
		steps = append(steps,
			[]string{"-n", p.ns[i], "link", "set", "lo", "up"},
			[]string{"-n", p.ns[i], "addr", "add", p.addr[i] + "/24", "dev", p.veth[i]},
			[]string{"-n", p.ns[i], "link", "set", p.veth[i], "up"},
		)
	}
	for _, s := range steps {
		if _, err := nsRun(s...); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", nsPrefix) // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	p.socks = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return p
}

// delete deletes the namespaces (which deletes the veth pair) by name. It
// logs what it cannot delete, except namespaces that do not exist.
func (p *netnsPair) delete() {
	for _, ns := range p.ns {
		if out, err := nsRun("netns", "del", ns); err != nil && !strings.Contains(out, "No such file") {
			p.t.Logf("deleting namespace %s: %v", ns, err)
		}
	}
}

// staleNetns matches the namespaces of a test run: the run's PID, a letter.
var staleNetns = regexp.MustCompile(`^` + nsPrefix + `(\d+)[a-z]$`)

// deleteStaleNetns deletes the namespaces of test runs that no longer run,
// after stopping, by PID, the processes still inside them.
func deleteStaleNetns(t testing.TB) {
	out, err := nsRun("netns", "list")
	if err != nil {
		return
	}
	for line := range strings.Lines(out) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		m := staleNetns.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); pid == os.Getpid() || !errors.Is(err, syscall.ESRCH) {
			continue // this run's, or that of a run still going
		}
		if pids, err := nsRun("netns", "pids", name); err == nil {
			for f := range strings.FieldsSeq(pids) {
				if n, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		if _, err := nsRun("netns", "del", name); err != nil {
			t.Logf("deleting the stale namespace %s: %v", name, err)
		} else {
			t.Logf("deleted the namespace %s of an earlier run", name)
		}
	}
}

// setLink sets the veth pair up or down, on both ends.
func (p *netnsPair) setLink(up bool) {
	p.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	for i := range 2 {
		if _, err := nsRun("-n", p.ns[i], "link", "set", p.veth[i], state); err != nil {
			p.t.Fatal(err)
		}
	}
}

// startProxy runs a proxy in namespace i that makes each host of hosts
// (host name -> address inside the namespace) reachable from the test
// through p.client. It is stopped by its PID when the test ends.
func (p *netnsPair) startProxy(i int, hosts map[string]string) {
	p.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		p.t.Fatal(err)
	}
	var pairs []string
	p.mu.Lock()
	for host, addr := range hosts {
		sock := filepath.Join(p.socks, host+".sock")
		p.hosts[host] = sock
		pairs = append(pairs, sock+"="+addr)
	}
	p.mu.Unlock()
	cmd := exec.Command("ip", "netns", "exec", p.ns[i], exe)
	cmd.Env = append(childEnv(), nsProxyEnv+"="+strings.Join(pairs, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting the proxy in %s: %v", p.ns[i], err)
	}
	p.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "proxy ready\n" {
		p.t.Fatalf("the proxy in %s did not start: %q %v", p.ns[i], line, err)
	}
}

// client returns an HTTP client whose requests to the proxies' host names
// go through the proxies.
func (p *netnsPair) client() *http.Client {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		sock, ok := p.hosts[host]
		p.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("no proxy for %s", host)
		}
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial},
		Timeout:   5 * time.Second,
	}
}

// startIn runs a binary in namespace ns, as start does.
func startIn(t testing.TB, ns, label, name string, args ...string) *proc {
	t.Helper()
	bin := binary(t, name)
	p := &proc{
		t:      t,
		label:  label,
		name:   name,
		cmd:    exec.Command("ip", append([]string{"netns", "exec", ns, bin, "--log-format", "json"}, args...)...),
		ready:  make(chan map[string]any, 1),
		exited: make(chan struct{}),
	}
	// "ip netns exec" runs the binary in its own process: signals to
	// p.cmd.Process reach it.
	p.cmd.Env = childEnv()
	p.cmd.Stdout = io.Discard
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s in %s: %v", label, ns, err)
	}
	go p.collect(stderr)
	t.Cleanup(p.stop)
	return p
}
