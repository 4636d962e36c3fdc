package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// Group commit. Every publish to a durable topic this node owns becomes a
// commitRec in the committer's queue, in sequence order per topic. One
// goroutine takes everything queued (up to maxCommitRecs records or
// maxCommitBytes of data), writes it to the store in one transaction
// (store.Store.Append, one element per topic), and settles each topic's
// records with the outcome: delivered and acknowledged when committed,
// sent to the topic's new owner when fenced, failed when the store failed.
// While a transaction runs, new publishes queue: the busier the node, the
// larger the batches, and a transaction's cost is shared by every message
// in it.

// commitRec is one numbered publish waiting for the store.
type commitRec struct {
	ot    *ownedTopic
	token uint64 // the claim it was numbered under
	seq   uint64
	time  int64
	req   *pubReq
}

const (
	// maxCommitRecs and maxCommitBytes bound one transaction.
	maxCommitRecs  = 4096
	maxCommitBytes = 16 << 20

	// maxQueuedRecs and maxQueuedBytes bound what waits for the store:
	// past them a publish to a durable topic fails at once (a store slower
	// than the publishers, AckNone publishers that never wait).
	maxQueuedRecs  = 64 << 10
	maxQueuedBytes = 256 << 20

	// storeBackoffMin and storeBackoffMax bound how long publishes to
	// durable topics fail at once after the store failed, before it is
	// tried again: the wait doubles while the store keeps failing.
	storeBackoffMin = 100 * time.Millisecond
	storeBackoffMax = 5 * time.Second
)

// committer writes durable topics' messages to the store in batches.
type committer struct {
	st      store.Store
	timeout time.Duration
	// settle receives each topic's records of a transaction, in order,
	// with the outcome: nil (committed), an error wrapping store.ErrFenced,
	// or the transaction's failure.
	settle func(recs []*commitRec, err error)
	stats  *counters

	mu     sync.Mutex
	queue  []*commitRec
	queued int // bytes of data in queue
	wake   chan struct{}

	// down: after a failure, until when publishes fail at once, and why.
	downMu    sync.Mutex
	downUntil time.Time
	downErr   error
	backoff   time.Duration

	done chan struct{} // closed when run returns
}

func newCommitter(st store.Store, timeout time.Duration, stats *counters, settle func([]*commitRec, error)) *committer {
	return &committer{st: st, timeout: timeout, settle: settle, stats: stats, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues a record. The caller holds the record's topic lock, which
// keeps each topic's records in sequence order.
func (c *committer) add(r *commitRec) {
	c.mu.Lock()
	c.queue = append(c.queue, r)
	c.queued += len(r.req.data)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// room returns an error when the queue has no room for size more bytes.
func (c *committer) room(size int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) >= maxQueuedRecs || c.queued+size > maxQueuedBytes {
		return fmt.Errorf("%d messages (%d bytes) already wait for the store", len(c.queue), c.queued)
	}
	return nil
}

// purge removes and returns the queued records of ot (the caller holds
// ot.mu): numbers handed out after a failed or fenced append are void.
func (c *committer) purge(ot *ownedTopic) []*commitRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*commitRec
	keep := c.queue[:0]
	for _, r := range c.queue {
		if r.ot == ot {
			out = append(out, r)
			c.queued -= len(r.req.data)
		} else {
			keep = append(keep, r)
		}
	}
	clear(c.queue[len(keep):])
	c.queue = keep
	return out
}

// take removes the next batch from the queue.
func (c *committer) take() []*commitRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, size := 0, 0
	for n < len(c.queue) && n < maxCommitRecs && (n == 0 || size+len(c.queue[n].req.data) <= maxCommitBytes) {
		size += len(c.queue[n].req.data)
		n++
	}
	c.queued -= size
	batch := make([]*commitRec, n)
	copy(batch, c.queue[:n])
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch
}

// run commits until ctx is done, then fails what is left with ErrClosed.
func (c *committer) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			for {
				batch := c.take()
				if len(batch) == 0 {
					return
				}
				for _, g := range groupByTopic(batch) {
					c.settle(g, ErrClosed)
				}
			}
		case <-c.wake:
		}
		for batch := c.take(); len(batch) > 0; batch = c.take() {
			c.flush(ctx, batch)
		}
	}
}

// flush writes one batch and settles it.
func (c *committer) flush(ctx context.Context, batch []*commitRec) {
	groups := groupByTopic(batch)
	appends := make([]store.Append, len(groups))
	for i, g := range groups {
		msgs := make([]store.Message, len(g))
		for j, r := range g {
			msgs[j] = store.Message{Seq: r.seq, Time: r.time, Data: r.req.data}
		}
		appends[i] = store.Append{Topic: g[0].ot.name, Token: g[0].token, Messages: msgs}
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	start := time.Now()
	results, err := c.st.Append(cctx, appends)
	cancel()
	elapsed := time.Since(start)
	c.stats.storeBatches.Add(1)
	c.stats.storeAppendNanos.Add(uint64(elapsed))
	c.stats.storeAppend.Record(elapsed)
	if err != nil {
		c.failed(err)
	} else {
		c.succeeded()
	}
	for i, g := range groups {
		gerr := err
		if err == nil && i < len(results) {
			gerr = results[i]
		}
		c.settle(g, gerr)
	}
}

// groupByTopic splits a batch into runs of one topic under one claim,
// keeping each topic's records in order. A topic whose claim changed
// within the batch gets one run per claim.
func groupByTopic(batch []*commitRec) [][]*commitRec {
	type key struct {
		ot    *ownedTopic
		token uint64
	}
	idx := make(map[key]int, len(batch))
	var groups [][]*commitRec
	for _, r := range batch {
		k := key{r.ot, r.token}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

// available returns the store's last failure while publishes to durable
// topics fail at once (see storeBackoffMin), nil otherwise.
func (c *committer) available() error {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	if c.downErr != nil && time.Now().Before(c.downUntil) {
		return c.downErr
	}
	return nil
}

// failed notes a failure to reach or write the store. Fencing and a
// closing node are not failures of the store.
func (c *committer) failed(err error) {
	if errors.Is(err, store.ErrFenced) || errors.Is(err, context.Canceled) {
		return
	}
	c.stats.storeErrors.Add(1)
	c.downMu.Lock()
	defer c.downMu.Unlock()
	c.backoff = min(max(2*c.backoff, storeBackoffMin), storeBackoffMax)
	c.downUntil, c.downErr = time.Now().Add(c.backoff), err
}

// succeeded notes that the store works.
func (c *committer) succeeded() {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	c.backoff, c.downErr = 0, nil
}

// settleCommit applies the outcome of one topic's records (see committer).
func (n *Node) settleCommit(recs []*commitRec, err error) {
	ot := recs[0].ot
	ot.mu.Lock()
	defer ot.mu.Unlock()
	switch {
	case err == nil:
		// Counted before the publishers hear of it: a publisher that reads
		// Stats after its acknowledgement sees its message counted.
		n.stats.sequenced.Add(uint64(len(recs)))
		n.stats.storeCommitted.Add(uint64(len(recs)))
		for _, r := range recs {
			ot.seq = max(ot.seq, r.seq)
			ot.hist.add(r.seq, r.time, r.req.data)
			n.fanout(ot, nil, r.seq, r.req.data)
			n.router.replyPublish(r.req, pubResult{epoch: ot.epoch, seq: r.seq})
		}
	case errors.Is(err, store.ErrFenced):
		reqs := make([]*pubReq, 0, len(recs))
		for _, r := range recs {
			reqs = append(reqs, r.req)
		}
		for _, r := range n.committer.purge(ot) {
			reqs = append(reqs, r.req)
		}
		n.stepDownLocked(ot, recs[0].token, reqs, err)
	default:
		// The publishes fail and the numbers handed out since the last
		// committed message are void, queued ones included. Whether the
		// transaction committed is not always known (a connection lost
		// during the commit): the claim is dropped too, so that the next
		// publish claims the topic again and learns the store's head.
		failed := append(recs, n.committer.purge(ot)...)
		if ot.dur != nil && ot.dur.token == recs[0].token {
			ot.dur.token, ot.dur.next = 0, ot.seq
		}
		if !errors.Is(err, ErrClosed) {
			err = storeError(ot.name, err)
		}
		for _, r := range failed {
			n.router.replyPublish(r.req, pubResult{err: err})
		}
	}
}
