package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(Main(m)) }

// query runs one statement and returns the first column of its first row.
func query(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return "", nil
	}
	return string(res[0].Rows[0][0]), nil
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestServerLifeCycle(t *testing.T) {
	t.Parallel()
	s := Start(t)
	pid, dir := s.PID(), s.Dir()
	if pid == 0 {
		t.Fatal("no postmaster PID after Start")
	}
	if got, err := query(t, s.URL(), "SELECT inet_server_addr()::text"); err != nil || got != "127.0.0.1/32" {
		t.Fatalf("server address = %q, %v; want 127.0.0.1/32", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(s.Port()))); err != nil {
		t.Fatalf("unix socket not in the server's directory: %v", err)
	}

	// Databases are isolated.
	u := s.NewDatabase(t)
	if _, err := query(t, u, "CREATE TABLE x (v int); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if got, err := query(t, u, "SELECT v FROM x"); err != nil || got != "42" {
		t.Fatalf("SELECT = %q, %v", got, err)
	}
	if _, err := query(t, s.URL(), "SELECT v FROM x"); err == nil {
		t.Fatal("table visible from another database")
	}

	// Stop: connections are refused, the data stay; Restart: same port.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("postmaster %d alive after Stop", pid)
	}
	if _, err := query(t, u, "SELECT 1"); err == nil {
		t.Fatal("query succeeded on a stopped server")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got, err := query(t, u, "SELECT v FROM x"); err != nil || got != "42" {
		t.Fatalf("after restart: SELECT = %q, %v", got, err)
	}

	// Kill, as a crash: recovery on Restart keeps committed data.
	pid = s.PID()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("postmaster %d alive after Kill", pid)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got, err := query(t, u, "SELECT v FROM x"); err != nil || got != "42" {
		t.Fatalf("after crash: SELECT = %q, %v", got, err)
	}

	// Close stops by PID and removes the files; it is idempotent.
	pid = s.PID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if alive(pid) {
		t.Fatalf("postmaster %d alive after Close", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("server directory still there after Close: %v", err)
	}
	if err := s.Restart(); err == nil {
		t.Fatal("Restart of a closed server succeeded")
	}
}

func TestSharedServer(t *testing.T) {
	t.Parallel()
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatal("Shared returned two servers")
	}
	u1, u2 := a.NewDatabase(t), a.NewDatabase(t)
	if u1 == u2 {
		t.Fatalf("NewDatabase returned %s twice", u1)
	}
	for _, u := range []string{u1, u2} {
		if got, err := query(t, u, "SELECT current_database()"); err != nil || got == "" {
			t.Fatalf("%s: current_database = %q, %v", u, got, err)
		}
	}
}

func TestRunsAsUnprivilegedUser(t *testing.T) {
	t.Parallel()
	s := Shared(t)
	info, err := os.Stat(filepath.Join(s.Dir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	uid := info.Sys().(*syscall.Stat_t).Uid
	if os.Geteuid() == 0 && uid == 0 {
		t.Fatal("data directory owned by root")
	}
	if got, err := query(t, s.URL(), "SELECT current_setting('data_directory')"); err != nil || got != filepath.Join(s.Dir(), "data") {
		t.Fatalf("data_directory = %q, %v", got, err)
	}
}

func TestFindBinaries(t *testing.T) {
	dir, err := findBinaries()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skipf("%v (install PostgreSQL: apt-get install postgresql)", err)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if !isExecutable(filepath.Join(dir, name)) {
			t.Fatalf("%s not executable in %s", name, dir)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{{"15", []int{15}}, {"9.6", []int{9, 6}}, {"x", nil}} {
		if got := parseVersion(c.in); !slices.Equal(got, c.want) {
			t.Fatalf("parseVersion(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// recorder is a testing.TB that records how a test ended.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Cleanup(func()) { panic("a cleanup registered for a server that did not start") }

// withoutPostgres runs Start where no PostgreSQL is installed.
func withoutPostgres(t *testing.T, require string) *recorder {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(RequireEnv, require)
	old := versionedBinaries
	versionedBinaries = filepath.Join(t.TempDir(), "*", "bin")
	defer func() { versionedBinaries = old }()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(r)
		t.Error("Start returned without PostgreSQL")
	}()
	<-done
	return r
}

func TestMissingPostgres(t *testing.T) {
	r := withoutPostgres(t, "")
	if r.skipped == "" || r.failed != "" || !strings.Contains(r.skipped, "apt-get install postgresql") {
		t.Fatalf("without PostgreSQL: skipped %q, failed %q; want a skip saying how to install it", r.skipped, r.failed)
	}
	r = withoutPostgres(t, "1")
	if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, RequireEnv) {
		t.Fatalf("without PostgreSQL, required: skipped %q, failed %q; want a failure naming %s", r.skipped, r.failed, RequireEnv)
	}
}
