// Package storetest is the conformance suite for implementations of
// store.Store. Every store that ships with ringcast passes it, and a third
// implementation should too:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := mystore.Open(...) // a fresh, empty store
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// # What Run checks
//
// Run calls open once per subtest, so each subtest starts from an empty
// store, and closes every store it was given when the subtest ends (Close
// is idempotent, so open may register a Close of its own too). It covers
// Claim (a new topic keeps the epoch it was given, a claim bumps the token
// and keeps epoch and head), Append (exact round trip of Time and Data
// including empty and 1 MiB payloads, fencing by token and by head, a batch
// mixing a fenced topic with one that commits, refusal of a malformed
// batch without committing anything), Read paging by count and by bytes,
// Trim by sequence number and by age, Topics paging in byte order of the
// names, concurrent appenders, context cancellation (errors wrap
// store.ErrUnavailable and the context's error) and Close (later calls
// return store.ErrClosed).
//
// # What RunShared checks
//
// RunShared is for two handles on one database, as two processes sharing
// it have: claims made through either handle fence the other, and two
// writers racing for one topic through the two handles never both commit:
// the committed sequence has no gap, every acknowledged append is in it,
// nothing else is, and the fencing tokens along it never decrease.
//
// # Conventions the suite pins down
//
// Topic names are ordered as Go orders strings (bytewise), for Topics and
// its after argument alike. A malformed batch (an element without
// messages, or with sequence numbers that are not consecutive) fails the
// whole call with an error that wraps neither store.ErrFenced nor
// store.ErrUnavailable, and commits nothing. Read of an unknown topic,
// Trim of an unknown topic and Topics past the last name return nothing
// and no error.
package storetest
