package gateway

import (
	"context"
	"time"

	cws "github.com/coder/websocket"
)

// The outbound queue and the writer. Everything sent to the client, replies
// and broadcasts alike, goes through one queue per connection bounded by
// Options.OutboundQueueBytes; a connection that overflows it is closed as a
// slow consumer. Where the platform can measure it (Linux), what the socket
// holds unacknowledged counts against the same bound after each batch, so a
// client that stops reading is cut once the kernel holds the limit for it,
// not once megabytes of socket buffers have filled. The writer drains the queue in batches, one write to the
// socket per batch, and sends the close message when the connection shuts
// down.

const (
	// itemOverhead is what one queued item costs beyond its bytes; it is
	// counted against OutboundQueueBytes so that many tiny items are bounded too.
	itemOverhead = 64
	// coalesceLimit is the size up to which a broadcast's receiver prefix and
	// shared body are copied into one buffer and sent as one frame; larger ones
	// are written as a fragmented message, prefix then body, without a copy.
	coalesceLimit = 4096
	// maxSpareItems bounds the queue slice kept between batches.
	maxSpareItems = 1024
	// idleSpareItems, idleScratchBytes and maxIdleCork bound the buffers a
	// connection keeps once its writer goes idle: a busy connection reuses
	// its buffers from batch to batch, an idle one does not hold on to what
	// a burst made it grow.
	idleSpareItems   = 16
	idleScratchBytes = 1024
	// slowCloseWait bounds the close handshake with a slow consumer.
	slowCloseWait = time.Second
)

// outItem is one queued message: either raw, a whole message of its own, or a
// shared broadcast written after the receiver's join_ref.
type outItem struct {
	raw     []byte
	binary  bool // raw is a binary message
	bc      *broadcast
	joinRef optString
	meta    bool
}

func (it *outItem) size() int {
	if it.bc == nil {
		return itemOverhead + len(it.raw)
	}
	n := itemOverhead + len(it.joinRef.s) + len(it.bc.body)
	if it.meta {
		n += len(it.bc.meta)
	}
	return n
}

// deliver queues a broadcast for j. The hub calls it with the topic's shard
// lock held for reading.
func (c *conn) deliver(j *join, b *broadcast) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || j.sub == nil {
		return
	}
	it := outItem{bc: b, joinRef: j.joinRef, meta: j.meta && !b.binary}
	if !j.publishing {
		c.enqueueLocked(it)
		return
	}
	if c.reserveLocked(it.size()) {
		j.held = append(j.held, it)
	}
}

// dropHeldLocked forgets the broadcasts held for j.
func (c *conn) dropHeldLocked(j *join) {
	for i := range j.held {
		c.queued -= j.held[i].size()
	}
	j.held = nil
	j.publishing = false
}

// enqueueLocked queues it for the writer, or closes the connection as a slow
// consumer if its queue is full. The caller holds c.mu.
func (c *conn) enqueueLocked(it outItem) {
	if c.reserveLocked(it.size()) {
		c.pushLocked(it)
	}
}

// reserveLocked counts n more bytes against the outbound queue limit.
func (c *conn) reserveLocked(n int) bool {
	if c.closed {
		return false
	}
	if c.queued > 0 && c.queued+n > c.h.opts.OutboundQueueBytes {
		c.slowConsumerLocked("outbound queue full", 0)
		return false
	}
	c.queued += n
	return true
}

// slowConsumerLocked closes c as a slow consumer, counts it and logs why.
// unacked is what the socket held that the client had not acknowledged.
func (c *conn) slowConsumerLocked(why string, unacked int) {
	if c.closed {
		return
	}
	c.h.stats.slowConsumers.Add(1)
	c.h.log.Info("gateway: closing slow consumer", "conn", c.id, "reason", why,
		"queued", c.queued, "unacked", unacked, "limit", c.h.opts.OutboundQueueBytes)
	c.slow = true
	c.shutdownLocked(cws.StatusTryAgainLater, reasonSlowConsumer, false)
}

// stallGrace is how long a client may go without acknowledging anything
// while what it has not taken is over OutboundQueueBytes. A client that
// reads, however slowly, keeps acknowledging and is never cut for a burst
// larger than the limit (a recovery of a long history); one that stopped
// reading is cut a stallGrace after it stopped.
const stallGrace = 250 * time.Millisecond

// checkUnacked closes c as a slow consumer if the client has stopped taking
// what is written to it: it has acknowledged nothing for stallGrace, it has
// not taken what was written before the last batch, and the bytes it has
// not taken, queued or held by the socket, exceed OutboundQueueBytes.
// written is the size of the last batch: a client that took everything
// before it is never cut, so that one message larger than the limit still
// goes through. The writer calls it after each batch.
func (c *conn) checkUnacked(written int) {
	c.mu.Lock()
	c.sent += int64(written)
	// The socket cannot hold more than what was written since the client
	// last acknowledged: while that fits the limit, nothing can exceed it,
	// and the socket is not asked (one system call per batch saved for
	// every client that keeps up).
	within := c.queued+int(c.sent-c.acked) <= c.h.opts.OutboundQueueBytes
	c.mu.Unlock()
	if within {
		return
	}
	unacked, ok := c.raw.unacked()
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if acked := c.sent - int64(unacked); acked > c.acked || c.ackedAt.IsZero() {
		c.acked, c.ackedAt = acked, now
	}
	if unacked <= written || now.Sub(c.ackedAt) < stallGrace {
		return
	}
	if c.queued+unacked > c.h.opts.OutboundQueueBytes {
		c.slowConsumerLocked("client not reading", unacked)
	}
}

// pushLocked appends an item already reserved and wakes the writer.
func (c *conn) pushLocked(it outItem) {
	if c.closed {
		c.queued -= it.size()
		return
	}
	c.queue = append(c.queue, it)
	c.startWriterLocked()
}

// startWriterLocked starts the writer unless it runs or the connection is not
// attached yet. The caller holds c.mu.
func (c *conn) startWriterLocked() {
	if c.writing || c.ws == nil {
		return
	}
	c.writing = true
	c.writer.Add(1)
	go c.writeLoopFn()
}

// writeLoop writes what is queued until the queue is empty, then exits; once
// the connection shuts down it sends the close message and exits. There is at
// most one writeLoop at a time (c.writing).
func (c *conn) writeLoop() {
	defer c.writer.Done()
	for {
		c.mu.Lock()
		if c.closed {
			code, reason, flush, slow := c.closeCode, c.closeReason, c.flushOnClose, c.slow
			c.mu.Unlock()
			c.closeWS(code, reason, flush, slow)
			return
		}
		if len(c.queue) == 0 {
			c.trimIdleLocked()
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if err := c.flushQueue(); err != nil {
			c.abort(err)
		}
	}
}

// trimIdleLocked drops the writer's buffers that a burst grew. The writer
// calls it with c.mu held as it goes idle.
func (c *conn) trimIdleLocked() {
	if cap(c.spare) > idleSpareItems {
		c.spare = nil
	}
	if cap(c.scratch) > idleScratchBytes {
		c.scratch = nil
	}
	c.raw.trim(maxIdleCork)
}

// closeWS writes what is queued if flush is set, then runs the close
// handshake.
func (c *conn) closeWS(code cws.StatusCode, reason string, flush, slow bool) {
	if flush {
		if err := c.flushQueue(); err != nil {
			c.abort(err)
		}
	}
	// The close handshake is bounded by WriteTimeout too: a client that does
	// not answer the close message is cut. A slow consumer, which is behind
	// on what it reads, gets slowCloseWait at most.
	wait := c.h.opts.WriteTimeout
	if slow {
		wait = min(wait, slowCloseWait)
	}
	cut := time.AfterFunc(wait, func() { _ = c.raw.Close() })
	if err := c.ws.Close(code, reason); err != nil {
		c.h.log.Debug("gateway: close", "conn", c.id, "err", err)
	}
	cut.Stop()
}

// abort ends a connection whose writes fail: without a close handshake, as
// the client does not take data.
func (c *conn) abort(err error) {
	c.h.log.Debug("gateway: write failed", "conn", c.id, "err", err)
	c.shutdown(cws.StatusInternalError, "write failed", false)
	_ = c.raw.Close()
}

// flushQueue writes everything queued as one batch: one write to the socket.
func (c *conn) flushQueue() error {
	c.mu.Lock()
	batch := c.queue
	c.queue, c.spare = c.spare[:0], nil
	c.mu.Unlock()
	if len(batch) == 0 {
		c.mu.Lock()
		c.spare = batch
		c.mu.Unlock()
		return nil
	}

	c.raw.cork()
	var err error
	n := 0
	for i := range batch {
		if err == nil {
			err = c.writeItem(&batch[i])
		}
		n += batch[i].size()
	}
	written, ferr := c.raw.uncork()
	if err == nil {
		err = ferr
	}
	if err == nil {
		c.h.stats.framesOut.Add(uint64(len(batch)))
	}
	clear(batch)

	c.mu.Lock()
	c.queued -= n
	if cap(batch) <= maxSpareItems {
		c.spare = batch[:0]
	}
	c.mu.Unlock()
	if err == nil {
		c.checkUnacked(written)
	}
	return err
}

func (c *conn) writeItem(it *outItem) error {
	if it.bc == nil {
		typ := cws.MessageText
		if it.binary {
			typ = cws.MessageBinary
		}
		return c.ws.Write(context.Background(), typ, it.raw)
	}
	b := it.bc
	typ := cws.MessageText
	prefix := c.scratch[:0]
	body, tail := b.body, []byte(nil)
	if b.binary {
		typ = cws.MessageBinary
		prefix = appendBinaryPushHeader(prefix, it.joinRef, b.topicLen, b.eventLen)
	} else {
		prefix = append(prefix, '[')
		prefix = appendOptString(prefix, it.joinRef)
		prefix = append(prefix, ',')
		if it.meta {
			body, tail = body[:len(body)-1], b.meta
		}
	}
	if len(prefix)+len(body)+len(tail) <= coalesceLimit {
		msg := append(append(prefix, body...), tail...)
		c.scratch = msg
		return c.ws.Write(context.Background(), typ, msg)
	}
	c.scratch = prefix
	w, err := c.ws.Writer(context.Background(), typ)
	if err != nil {
		return err
	}
	for _, p := range [][]byte{prefix, body, tail} {
		if len(p) == 0 {
			continue
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return w.Close()
}
