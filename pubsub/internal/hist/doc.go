// Package hist is a histogram of durations that many goroutines record
// into without a lock or an allocation: fixed exponential buckets, each an
// atomic counter.
//
// # Buckets
//
// Bucket i holds the durations in (Base·2^(i-1), Base·2^i], bucket 0 those
// up to Base (zero and negative durations included), and a last bucket,
// past Bounds-1, everything longer: from 25µs to about 13s in 20 steps,
// which covers a store transaction on a local disk as well as a claim that
// waits for a dead member's timeout.
//
// # Reading
//
// Snapshot copies the counts one at a time while recording goes on: the
// total is the sum of the copied counts, so that it always agrees with
// them, and the sum of durations may be off by what was recorded during
// the copy.
package hist
