package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// requirePostgresEnv set to 1 fails, instead of skipping, a test that needs
// a PostgreSQL installation on a machine without one.
const requirePostgresEnv = "RINGCAST_REQUIRE_POSTGRES"

// pgServer is a PostgreSQL server a test runs: initdb'd into a temporary
// directory, listening on 127.0.0.1 only, trusting every local
// connection, started and stopped by its PID.
type pgServer struct {
	t    testing.TB
	base string
	port int
	cmd  *exec.Cmd

	exited chan struct{}
}

// startPostgres starts a PostgreSQL server for t and stops it when t
// ends. Without PostgreSQL's binaries it skips t, or fails it when
// RINGCAST_REQUIRE_POSTGRES=1.
func startPostgres(t testing.TB) *pgServer {
	t.Helper()
	bin, err := postgresBinaries()
	if err != nil {
		if os.Getenv(requirePostgresEnv) == "1" {
			t.Fatalf("%v, and %s=1 requires them (Debian/Ubuntu: apt-get install postgresql)", err, requirePostgresEnv)
		}
		t.Skipf("%v: install PostgreSQL to run this test (Debian/Ubuntu: apt-get install postgresql); %s=1 fails instead of skipping", err, requirePostgresEnv)
	}
	cred, err := postgresUser()
	if err != nil {
		t.Fatal(err)
	}
	// The server may run as another user: its directory is not under the
	// test's t.TempDir, which that user may not reach.
	base, err := os.MkdirTemp("", "ringcast-cluster-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) }) // runs after the stop below
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	s := &pgServer{t: t, base: base}
	log, err := os.Create(filepath.Join(base, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if cred != nil {
		_ = log.Chown(int(cred.Uid), int(cred.Gid))
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = base
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "LC_ALL=C", "LANG=C", "TZ=UTC"}
		cmd.Stdout, cmd.Stderr = log, log
		// A test binary that dies takes the server with it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	data := filepath.Join(base, "data")
	if err := command("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").Run(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, s.log())
	}
	// A free port may be taken between the probe and the bind: a few
	// bounded attempts.
	const attempts = 5
	for i := 1; ; i++ {
		s.port = freePort(t)
		s.cmd = command("postgres", "-D", data, "-p", strconv.Itoa(s.port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+base,
			"-c", "max_connections=200", "-c", "shared_buffers=32MB")
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("starting postgres: %v", err)
		}
		s.exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) {
			_ = cmd.Wait()
			close(exited)
		}(s.cmd, s.exited)
		err := s.waitAccepting(60 * time.Second)
		if err == nil {
			break
		}
		s.stop()
		if i == attempts || !strings.Contains(s.log(), "could not") {
			t.Fatalf("postgres did not start (attempt %d): %v\n%s", i, err, s.log())
		}
	}
	t.Cleanup(s.stop)
	return s
}

// URL is the connection URL of the server's postgres database.
func (s *pgServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// waitAccepting polls until the server answers a connection, it exits, or
// timeout passes.
func (s *pgServer) waitAccepting(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgconn.Connect(ctx, s.URL())
		if err == nil {
			err = c.Close(ctx)
			cancel()
			return err
		}
		cancel()
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections after %v: %w", timeout, err)
		}
	}
}

// stop ends the server by its PID: SIGINT (fast shutdown), then SIGKILL
// after 20 s.
func (s *pgServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.t.Errorf("postgres (PID %d) ignored SIGINT; killing it", s.cmd.Process.Pid)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *pgServer) log() string {
	b, _ := os.ReadFile(filepath.Join(s.base, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// postgresBinaries returns the directory holding initdb and postgres: the
// one on PATH, or the newest under /usr/lib/postgresql.
func postgresBinaries() (string, error) {
	executable := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
	}
	if p, err := exec.LookPath("initdb"); err == nil && executable(filepath.Join(filepath.Dir(p), "postgres")) {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL's initdb and postgres are neither on PATH nor under /usr/lib/postgresql/*/bin")
}

// postgresUser is who runs the server: nil (the test's user) unless the
// test runs as root, which PostgreSQL refuses; then postgres, or nobody.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")
}
