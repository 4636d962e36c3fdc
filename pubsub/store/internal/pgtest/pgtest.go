package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RequireEnv is the environment variable that turns a missing PostgreSQL
// installation from a skipped test into a failed one ("1").
const RequireEnv = "RINGCAST_REQUIRE_POSTGRES"

// Timeouts of the server's life cycle.
const (
	readyTimeout  = 60 * time.Second // from launch to accepting connections
	stopTimeout   = 20 * time.Second // fast shutdown before SIGQUIT
	quitTimeout   = 5 * time.Second  // immediate shutdown before SIGKILL
	launchRetries = 8                // bounded attempts to bind a port
	pollInterval  = 20 * time.Millisecond
)

// versionedBinaries is where Debian and Ubuntu install each major
// version's server binaries.
var versionedBinaries = "/usr/lib/postgresql/*/bin"

// errNoBinaries reports a machine without a PostgreSQL installation.
var errNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH nor under /usr/lib/postgresql/*/bin")

// Server is a PostgreSQL server run by a test: one cluster in a temporary
// directory, listening on 127.0.0.1 only. Its superuser is "postgres" and
// connections are trusted (no password).
type Server struct {
	bin     string              // directory holding initdb and postgres
	base    string              // temporary directory holding everything below
	dataDir string              // the cluster
	sockDir string              // the unix socket directory
	logPath string              // the postmaster's output
	cred    *syscall.Credential // user to run as (root only), or nil
	port    int                 // fixed after the first successful launch
	fsync   bool

	dbSeq atomic.Int64 // NewDatabase name counter

	adminMu sync.Mutex
	admin   *pgconn.PgConn // exec's connection to the postgres database, or nil

	mu      sync.Mutex
	proc    *exec.Cmd     // the running postmaster, or nil
	exited  chan struct{} // closed when proc has exited
	waited  chan struct{} // closed when proc's waiter goroutine has returned
	closed  bool
	exitErr error // proc's exit status, valid once exited is closed
}

// Options tune a server.
type Options struct {
	// NoFsync turns fsync off: much faster CREATE DATABASE and commits,
	// and data lost only if the machine (not the server) crashes, which
	// no test does. Benchmarks keep fsync on.
	NoFsync bool
}

// Start starts a server of its own for the test, with fsync on, and
// registers a cleanup that stops it and removes its files. It skips the
// test when PostgreSQL is not installed (fails it when
// RINGCAST_REQUIRE_POSTGRES=1).
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := newServer(opts)
	if err != nil {
		handleStartError(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

var shared struct {
	main    atomic.Bool // Main is in use
	once    sync.Once
	server  *Server
	err     error
	stopped atomic.Bool
}

// TestingM is what Main wraps: *testing.M, and goleak.TestingM.
type TestingM interface{ Run() int }

type mainWrapper struct{ m TestingM }

// Main wraps a package's testing.M so that the server Shared starts is
// stopped (by its PID) and removed once every test of the package has run:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
func Main(m TestingM) TestingM {
	shared.main.Store(true)
	return mainWrapper{m}
}

// Run runs the tests, then stops the shared server if one was started. A
// failure to stop it turns a passing run into a failing one.
func (w mainWrapper) Run() int {
	code := w.m.Run()
	shared.stopped.Store(true)
	shared.once.Do(func() {}) // no server can start from now on
	if shared.server != nil {
		if err := shared.server.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the shared server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the test binary's shared server, starting it on first
// use, with fsync off (Options.NoFsync). The package's TestMain must wrap testing.M with Main, which stops
// it. Tests isolate themselves with NewDatabase, and must not stop, kill
// or restart the shared server (use Start for that).
func Shared(t testing.TB) *Server {
	t.Helper()
	if !shared.main.Load() {
		t.Fatal("pgtest: Shared needs the package's TestMain to run goleak.VerifyTestMain(pgtest.Main(m)) (or pgtest.Main(m).Run()), which stops the shared server")
	}
	if shared.stopped.Load() {
		t.Fatal("pgtest: Shared called after the tests ended")
	}
	shared.once.Do(func() { shared.server, shared.err = newServer(Options{NoFsync: true}) })
	if shared.err != nil {
		handleStartError(t, shared.err)
	}
	return shared.server
}

// handleStartError skips or fails t for a server that could not start.
func handleStartError(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNoBinaries) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("pgtest: %v, and %s=1 requires them: install PostgreSQL (Debian/Ubuntu: apt-get install postgresql)", err, RequireEnv)
		}
		t.Skipf("pgtest: %v; install PostgreSQL to run this test (Debian/Ubuntu: apt-get install postgresql), and set %s=1 to fail instead of skipping", err, RequireEnv)
	}
	t.Fatalf("pgtest: %v", err)
}

// newServer initialises a cluster and launches its postmaster.
func newServer(opts Options) (s *Server, err error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp("", "ringcast-pgtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(base)
		}
	}()
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(base, 0o700); err != nil {
		return nil, err
	}
	s = &Server{
		bin:     bin,
		base:    base,
		dataDir: filepath.Join(base, "data"),
		sockDir: base,
		logPath: filepath.Join(base, "postgres.log"),
		cred:    cred,
		fsync:   !opts.NoFsync,
	}
	if err := s.initdb(); err != nil {
		return nil, err
	}
	if err := s.launch(); err != nil {
		return nil, err
	}
	return s, nil
}

// findBinaries returns the directory holding initdb and postgres.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(versionedBinaries)
	var best string
	var bestVersion []int
	for _, dir := range dirs {
		if !isExecutable(filepath.Join(dir, "initdb")) || !isExecutable(filepath.Join(dir, "postgres")) {
			continue
		}
		v := parseVersion(filepath.Base(filepath.Dir(dir)))
		if best == "" || slices.Compare(v, bestVersion) > 0 {
			best, bestVersion = dir, v
		}
	}
	if best == "" {
		return "", errNoBinaries
	}
	return best, nil
}

// parseVersion parses a directory name such as "15" or "9.6".
func parseVersion(s string) []int {
	var v []int
	for f := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runAs returns the credential initdb and postgres run with: nil unless
// the test runs as root, which PostgreSQL refuses.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// command prepares one of the server binaries, run as s.cred with a
// minimal environment, its output appended to the log file.
func (s *Server) command(log *os.File, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.base
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.base,
		"LC_ALL=C",
		"LANG=C",
		"TZ=UTC",
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: a test binary that dies (a timeout panic) takes its
	// server with it instead of leaving it running. Setpgid: a terminal's
	// signals meant for the test do not reach the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

func (s *Server) openLog() (*os.File, error) {
	return os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// logTail returns the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

// initdb creates the cluster.
func (s *Server) initdb() error {
	log, err := s.openLog()
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := s.command(log, "initdb",
		"-D", s.dataDir,
		"-U", "postgres",
		"-A", "trust",
		"-E", "UTF8",
		"--no-locale",
		"--no-sync", // a test cluster: a crash of the machine loses it anyway
	)
	if err := cmd.Run(); err != nil {
		hint := ""
		if s.cred != nil {
			hint = fmt.Sprintf(" (running as uid %d: the temporary directory %s must be reachable by that user)", s.cred.Uid, os.TempDir())
		}
		return fmt.Errorf("initdb: %w%s\n%s", err, hint, s.logTail())
	}
	return nil
}

// bindFailure matches the postmaster's complaints about a port or a shared
// memory segment still held by a previous or foreign process: worth
// another launch.
var bindFailure = regexp.MustCompile(`(?i)could not bind|address already in use|could not create any TCP/IP sockets|could not create lock file|pre-existing shared memory block|lock file .* already exists`)

// launch starts the postmaster and waits until it accepts connections.
// Before the first successful launch it picks a new free port for each
// attempt; afterwards it keeps the port (so that URLs stay valid) and
// retries the same one.
func (s *Server) launch() error {
	var last error
	for attempt := 0; attempt < launchRetries; attempt++ {
		port := s.port
		if port == 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			port = p
		}
		err := s.launchOnce(port)
		if err == nil {
			s.port = port
			return nil
		}
		last = err
		if !errors.Is(err, errRetryLaunch) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return fmt.Errorf("postmaster did not start after %d attempts: %w", launchRetries, last)
}

var errRetryLaunch = errors.New("port or shared memory in use")

// freePort returns a port of 127.0.0.1 that was free a moment ago. The
// postmaster may still lose a race for it; launch then retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) launchOnce(port int) error {
	log, err := s.openLog()
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	fmt.Fprintf(log, "pgtest: launching on 127.0.0.1:%d at %s\n", port, time.Now().Format(time.RFC3339Nano))
	cmd := s.command(log, "postgres",
		"-D", s.dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.sockDir,
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
		"-c", "timezone=UTC",
		"-c", "log_timezone=UTC",
		"-c", "fsync="+map[bool]string{true: "on", false: "off"}[s.fsync],
	)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	exited, waited := make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	s.proc, s.exited, s.waited = cmd, exited, waited
	s.mu.Unlock()
	go func() { // owned by s: joined by stopProcess
		defer close(waited)
		err := cmd.Wait()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		select {
		case <-exited:
			<-waited
			s.mu.Lock()
			exitErr := s.exitErr
			s.proc = nil
			s.mu.Unlock()
			tail := s.logTail()
			if bindFailure.MatchString(lastLaunch(tail)) {
				return fmt.Errorf("%w: postgres exited (%v):\n%s", errRetryLaunch, exitErr, tail)
			}
			return fmt.Errorf("postgres exited during start-up (%v):\n%s", exitErr, tail)
		default:
		}
		if err := s.ping(ctx, port); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			err := s.stopProcess()
			return errors.Join(fmt.Errorf("postgres did not accept connections within %v:\n%s", readyTimeout, s.logTail()), err)
		case <-exited:
		case <-time.After(pollInterval):
		}
	}
}

// lastLaunch returns the part of the log written since the last launch.
func lastLaunch(log string) string {
	if i := strings.LastIndex(log, "pgtest: launching"); i >= 0 {
		return log[i:]
	}
	return log
}

// ping connects once to the server's postgres database.
func (s *Server) ping(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, s.urlFor(port, "postgres"))
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

func (s *Server) urlFor(port int, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// URL returns the connection URL of the server's "postgres" database.
func (s *Server) URL() string { return s.DatabaseURL("postgres") }

// DatabaseURL returns the connection URL of one of the server's databases.
func (s *Server) DatabaseURL(name string) string { return s.urlFor(s.port, name) }

// Port returns the TCP port the server listens on (127.0.0.1).
func (s *Server) Port() int { return s.port }

// Dir returns the directory holding the cluster, its socket and log.
func (s *Server) Dir() string { return s.base }

// PID returns the postmaster's process ID, or 0 while it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Process.Pid
}

// CreateDatabase creates a database and returns its URL.
func (s *Server) CreateDatabase(name string) (string, error) {
	if err := s.exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return s.DatabaseURL(name), nil
}

// DropDatabase drops a database, closing the connections still open to it.
func (s *Server) DropDatabase(name string) error {
	if err := s.exec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

// NewDatabase creates a database named after the test, returns its URL
// and registers a cleanup that drops it (while the server is running).
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", s.dbSeq.Add(1), strings.ToLower(nonIdent.ReplaceAllString(t.Name(), "_")))
	if len(name) > 63 {
		name = name[:63]
	}
	u, err := s.CreateDatabase(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if s.PID() == 0 {
			return // stopped: the database goes with the server's files
		}
		if err := s.DropDatabase(name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return u
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// exec runs one statement on the postgres database, over a connection
// kept for the next one.
func (s *Server) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.admin == nil || s.admin.IsClosed() {
			c, err := pgconn.Connect(ctx, s.URL())
			if err != nil {
				return err
			}
			s.admin = c
		}
		_, err := s.admin.Exec(ctx, sql).ReadAll()
		if err == nil || !s.admin.IsClosed() || attempt > 0 {
			return err
		}
		// The connection died with a restart of the server: once more on
		// a new one.
	}
}

// closeAdmin closes the connection exec keeps.
func (s *Server) closeAdmin() {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.admin.Close(ctx) //nolint:errcheck // closing; the server may be gone
		s.admin = nil
	}
}

// Stop shuts the server down (fast shutdown: open sessions are ended,
// SQLSTATE 57P01) and waits until the postmaster has exited. Its data stay
// for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	return s.stopProcess()
}

// Kill kills the server's processes with SIGKILL, as a crash of its
// machine would, and waits until they have exited. Restart recovers.
func (s *Server) Kill() error {
	s.mu.Lock()
	proc, exited, waited := s.proc, s.exited, s.waited
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	pid := proc.Process.Pid
	// Stopped, the postmaster forks no more backends; those it has (each
	// in a session of its own) are killed first, while they are still
	// known as its children.
	if err := proc.Process.Signal(syscall.SIGSTOP); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping postgres (pid %d): %w", pid, err)
	}
	children := childrenOf(pid)
	for _, c := range children {
		syscall.Kill(c, syscall.SIGKILL) //nolint:errcheck // gone already: fine
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing postgres (pid %d): %w", pid, err)
	}
	<-exited
	<-waited
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	// The backends are no children of ours: wait (bounded) until none is
	// left to answer a client.
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range children {
		for running(c) {
			if time.Now().After(deadline) {
				return fmt.Errorf("postgres backend %d survives SIGKILL", c)
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(c); ok && ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// running reports whether pid is a process that is not a zombie.
func running(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// procStat reads a process's state and parent from /proc/<pid>/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

// Restart starts a stopped or killed server again, on the same port and
// data, and waits until it accepts connections.
func (s *Server) Restart() error {
	s.mu.Lock()
	running, closed := s.proc != nil, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return errors.New("pgtest: Restart of a closed server")
	case running:
		if err := s.stopProcess(); err != nil {
			return err
		}
	}
	return s.launch()
}

// stopProcess stops the postmaster by its PID: SIGINT (fast shutdown),
// then SIGQUIT (immediate shutdown), then SIGKILL, each after a deadline.
func (s *Server) stopProcess() error {
	s.mu.Lock()
	proc, exited, waited := s.proc, s.exited, s.waited
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	var errs []error
	for _, step := range []struct {
		sig     syscall.Signal
		timeout time.Duration
	}{
		{syscall.SIGINT, stopTimeout},
		{syscall.SIGQUIT, quitTimeout},
		{syscall.SIGKILL, time.Minute},
	} {
		if err := proc.Process.Signal(step.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("signal %v to postgres (pid %d): %w", step.sig, proc.Process.Pid, err))
		}
		timer := time.NewTimer(step.timeout)
		select {
		case <-exited:
			timer.Stop()
			<-waited
			s.mu.Lock()
			s.proc = nil
			s.mu.Unlock()
			return errors.Join(errs...)
		case <-timer.C:
			errs = append(errs, fmt.Errorf("postgres (pid %d) still running %v after %v", proc.Process.Pid, step.timeout, step.sig))
		}
	}
	return errors.Join(errs...)
}

// Close stops the server and removes its files. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.closeAdmin()
	err := s.stopProcess()
	if err == nil {
		err = s.killStale()
	}
	if err != nil {
		return fmt.Errorf("stopping postgres in %s (left in place): %w", s.base, err)
	}
	return os.RemoveAll(s.base)
}

// killStale kills a postmaster that postmaster.pid still names after ours
// has exited: none is expected, but its files must not be removed under a
// running server.
func (s *Server) killStale() error {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postmaster.pid"))
	if err != nil {
		return nil // absent: shut down cleanly
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return nil
	}
	if syscall.Kill(pid, 0) != nil {
		return nil // gone
	}
	// Only a postgres process: the PID may have been reused.
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || !strings.HasPrefix(string(comm), "postgres") {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing stale postmaster %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("stale postmaster %d survives SIGKILL", pid)
		}
		time.Sleep(pollInterval)
	}
	return nil
}
