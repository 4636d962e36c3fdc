// Package pgtest starts real PostgreSQL servers for ringcast's tests.
//
// # Servers
//
// Start initialises a fresh cluster (initdb) in a temporary directory, runs
// the postmaster on a free port of 127.0.0.1 (its unix socket inside the
// same directory), waits until it accepts connections and registers a
// cleanup that stops it by its PID and removes its files. A Server can be
// stopped, killed and started again on the same port and data, which is
// how tests simulate a database outage.
//
// Shared returns one server per test binary instead, much cheaper than a
// cluster per test; tests isolate themselves with NewDatabase. A package
// that uses Shared wraps its testing.M with Main, which stops the shared
// server once every test has run:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
//
// Servers started by Start keep fsync on, as benchmarks need; the shared
// server turns it off, which makes creating databases several times
// faster and loses nothing unless the machine itself crashes.
//
// # Binaries
//
// The server binaries (initdb, postgres) are looked up on PATH, then under
// /usr/lib/postgresql/*/bin (the newest major version). Without them a test
// is skipped with a message saying how to install them, unless the
// environment sets RINGCAST_REQUIRE_POSTGRES=1, in which case it fails.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the test runs as root, initdb
// and the postmaster run as the "postgres" system user (or "nobody" when
// there is none), in a directory created for that user under the system
// temporary directory.
package pgtest
