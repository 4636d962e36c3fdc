// Package sqlite is ringcast's embedded store: the durable topics of the
// nodes of one host in one SQLite file, written without cgo.
//
//	s, err := sqlite.Open(ctx, "/var/lib/ringcast/topics.db", sqlite.Options{Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	node, err := pubsub.New(pubsub.Config{Store: s, ...})
//
// # Sharing a file
//
// Several processes of one host (and several Store values of one process)
// may open the same file: it is kept in WAL mode, so readers never wait
// for the writer, and every write transaction starts with BEGIN IMMEDIATE,
// so writers queue for the file's write lock (for at most
// Options.BusyTimeout) instead of failing half-way. Within one Store all
// writes go through one connection, queued in the process; reads use a
// small pool of read-only connections. The file must be on a local file
// system: SQLite's WAL mode does not work over a network file system.
//
// # Durability
//
// With the default Options.Synchronous ("full") a commit returns once the
// write-ahead log is on disk, so an acknowledged append survives a power
// failure. "normal" skips that sync: an append then survives a crash of
// the process but not of the machine, and commits are several times
// faster.
//
// # The file
//
// Open creates the file (and its directory, mode 0700) when it is missing
// and initialises an empty one. It refuses, without writing to it, a file
// that is not an SQLite database, an SQLite database of another
// application, and a ringcast store of a newer schema than this build
// knows: the error wraps store.ErrNotRingcast and names the file and the
// reason. The schema is the one every ringcast store shares:
//
//   - ringcast_meta(key, value): application = 'ringcast' and
//     schema_version, the number of migration steps applied;
//   - ringcast_topics(topic, epoch, seq, token, owner, claimed_at): one row
//     per topic, claimed_at in unix nanoseconds;
//   - ringcast_messages(topic, seq, time, data): the committed messages,
//     time in unix nanoseconds, with an index on (topic, time) for
//     trimming by age.
//
// The file's application_id (PRAGMA application_id) is 0x52435354
// ("RCST"), so that file(1) and other tools can tell it apart.
//
// # Errors
//
// Every failure of the database (locked beyond the busy timeout, disk or
// Options.MaxSize full, I/O error) and a cancelled or expired context are
// returned wrapped in store.ErrUnavailable, the cause kept in the chain.
// A malformed batch and invalid arguments are plain errors.
package sqlite
