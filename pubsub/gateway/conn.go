package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// A connection runs up to three goroutines, all owned by the conn and ended
// before its serveConn goroutine (the reader) returns:
//   - the reader reads messages, answers heartbeats and malformed messages
//     itself, and hands the rest to the worker in order;
//   - the worker runs joins, leaves and publishes one at a time, as Phoenix
//     runs a channel's messages; it is started on demand and exits when idle;
//   - the writer drains the outbound queue in batches; it is started when
//     something is queued and exits once the queue is empty, and it sends the
//     close message when the connection shuts down.
//
// conn.mu guards the queue and the joins; it is never held during I/O or a
// broker call.

const (
	// pendingOps bounds the messages read but not yet handled by the worker;
	// past it the reader waits, which pushes back on the client over TCP.
	pendingOps = 16
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

	reasonSlowConsumer = "slow consumer"
	reasonIdleTimeout  = "idle timeout"
	reasonShutdown     = "server shutting down"
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

// join is a connection's membership of one topic.
type join struct {
	conn  *conn
	topic string

	// Guarded by conn.mu; sub is written with the hub shard's lock held too.
	sub        *topicSub
	joinRef    optString
	meta       bool
	publishing bool      // a publish of this connection to the topic is in flight
	held       []outItem // broadcasts held back until the publish reply is queued
	// private is the shard of the join's own subscription when it recovered
	// with since (set before the join is shared, then read-only).
	private *hubShard
}

type conn struct {
	h  *Handler
	id uint64
	// ctx ends with the connection. Reads and writes on the WebSocket take
	// no context: they are bounded by the idle timer, the write deadlines of
	// corkConn, and kill, which closes the socket.
	ctx    context.Context
	cancel context.CancelFunc
	// opCtx bounds the joins and publishes of the worker; it ends as soon as
	// the connection starts closing.
	opCtx    context.Context
	opCancel context.CancelFunc
	done     chan struct{} // closed by shutdown
	ops      chan *frame   // messages for the worker

	working atomic.Bool
	workers sync.WaitGroup
	writer  sync.WaitGroup // the writer goroutine; Add with mu held
	// writeLoopFn is c.writeLoop, made once: a go statement on a method
	// value would allocate its closure each time the writer starts.
	writeLoopFn func()
	idle        *time.Timer
	scratch     []byte // the writer's buffer for receiver prefixes

	ws  *cws.Conn
	raw *corkConn

	mu           sync.Mutex
	closed       bool
	killed       bool
	writing      bool // a writer goroutine runs
	closeCode    cws.StatusCode
	closeReason  string
	flushOnClose bool
	queue        []outItem
	spare        []outItem
	queued       int // bytes queued, held or being written
	joins        map[string]*join
}

func newConn(h *Handler, id uint64) *conn {
	ctx, cancel := context.WithCancel(h.ctx)
	opCtx, opCancel := context.WithCancel(ctx)
	c := &conn{
		h:        h,
		id:       id,
		ctx:      ctx,
		cancel:   cancel,
		opCtx:    opCtx,
		opCancel: opCancel,
		done:     make(chan struct{}),
		ops:      make(chan *frame, pendingOps),
		joins:    make(map[string]*join),
	}
	c.writeLoopFn = c.writeLoop
	return c
}

// attach hands the upgraded connection to c. It reports false if c was
// killed meanwhile.
func (c *conn) attach(ws *cws.Conn, raw *corkConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws, c.raw = ws, raw
	if c.closed {
		// Shut down before it was attached: the writer sends the close message.
		c.startWriterLocked()
	}
	return !c.killed
}

// serve runs the connection until it ends, then leaves every topic.
func (c *conn) serve() {
	c.idle = time.AfterFunc(c.h.opts.IdleTimeout, func() {
		c.shutdown(cws.StatusPolicyViolation, reasonIdleTimeout, true)
	})
	c.readLoop()
	c.idle.Stop()
	c.shutdown(cws.StatusNormalClosure, "", true)
	c.workers.Wait()
	c.writer.Wait()
	c.cancel()
	_ = c.raw.Close()

	c.mu.Lock()
	joins := make([]*join, 0, len(c.joins))
	for _, j := range c.joins {
		joins = append(joins, j)
	}
	c.mu.Unlock()
	for _, j := range joins {
		_, unsub := c.h.hub.leave(j)
		c.h.hub.unsubscribe(j.topic, unsub)
	}
}

func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if status := cws.CloseStatus(err); status == -1 {
				c.h.log.Debug("websocket: connection read ended", "conn", c.id, "err", err)
			}
			return
		}
		c.idle.Reset(c.h.opts.IdleTimeout)
		c.h.stats.framesIn.Add(1)
		if !c.handleMessage(typ, data) {
			return
		}
	}
}

// handleMessage handles one message from the client. It reports false once
// the connection is shutting down.
func (c *conn) handleMessage(typ cws.MessageType, data []byte) bool {
	var f frame
	var err error
	if typ == cws.MessageBinary {
		f, err = parseBinaryFrame(data)
	} else {
		f, err = parseJSONFrame(data)
	}
	switch {
	case err != nil:
		c.refuse(&f, err)
	case f.topic == topicPhoenix:
		switch f.event {
		case eventHeartbeat:
			c.reply(&f, statusOK, []byte(emptyObject))
		case eventJoin:
			c.refuseReason(&f, reasonReservedTopic)
		default:
			c.refuseReason(&f, reasonUnknownEvent)
		}
	default:
		select {
		case c.ops <- &f:
		case <-c.done:
			return false
		}
		if c.working.CompareAndSwap(false, true) {
			c.workers.Add(1)
			go c.work()
		}
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// work handles queued messages one at a time and exits once there are none.
func (c *conn) work() {
	defer c.workers.Done()
	for {
		select {
		case f := <-c.ops:
			c.handle(f)
			continue
		case <-c.done:
			return
		default:
		}
		c.working.Store(false)
		if len(c.ops) == 0 || !c.working.CompareAndSwap(false, true) {
			return
		}
	}
}

func (c *conn) handle(f *frame) {
	switch f.event {
	case eventJoin:
		c.handleJoin(f)
	case eventLeave:
		c.handleLeave(f)
	default:
		j := c.lookup(f.topic, f.joinRef)
		switch {
		case j == nil:
			c.refuseReason(f, reasonUnmatchedTopic)
		case f.event == eventPublish || f.binary && strings.HasPrefix(f.event, publishEventPrefix):
			c.handlePublish(f, j)
		default:
			c.refuseReason(f, reasonUnknownEvent)
		}
	}
}

// lookup returns the join of topic that joinRef designates, or nil.
func (c *conn) lookup(topic string, joinRef optString) *join {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.joins[topic]
	if j == nil || !j.joinRef.matches(joinRef) {
		return nil
	}
	return j
}

func (c *conn) handleJoin(f *frame) {
	p, ok := parseJoin(f)
	if !ok {
		c.refuseReason(f, reasonJoinPayload)
		return
	}
	meta := p.meta
	c.mu.Lock()
	if old := c.joins[f.topic]; old != nil && p.since != nil {
		// Resuming replaces the join and its subscription.
		c.mu.Unlock()
		_, unsub := c.h.hub.leave(old)
		c.h.hub.unsubscribe(f.topic, unsub)
		c.mu.Lock()
		c.enqueueLocked(closeItem(old.joinRef, f.topic))
	} else if old != nil {
		// A join of a joined topic replaces the old join: phx_close for the
		// old join_ref, then the reply. The broker subscription stays.
		c.enqueueLocked(closeItem(old.joinRef, f.topic))
		old.joinRef, old.meta = f.joinRef, meta
		c.enqueueLocked(replyItem(f, statusOK, []byte(emptyObject)))
		c.mu.Unlock()
		c.h.stats.joins.Add(1)
		return
	}
	full := len(c.joins) >= c.h.opts.MaxTopicsPerConn
	c.mu.Unlock()
	if full {
		c.refuseReason(f, reasonTooManyTopics)
		return
	}
	j := &join{conn: c, topic: f.topic, joinRef: f.joinRef, meta: meta}
	ctx, cancel := context.WithTimeout(c.opCtx, c.h.opts.JoinTimeout)
	var err error
	if p.since != nil {
		err = c.resume(ctx, f, j, *p.since)
	} else {
		err = c.h.hub.join(ctx, j, replyItem(f, statusOK, []byte(emptyObject)))
	}
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, errRecoveryUnsupported):
		c.refuseReason(f, reasonNoRecovery)
	case errors.Is(err, errConnClosed):
	case errors.Is(err, errJoinTimeout):
		c.refuseReason(f, reasonJoinTimeout)
	default:
		c.refuseReason(f, reasonSubscribeFailed)
	}
}

// joinParams are the options a join payload carries.
type joinParams struct {
	meta  bool      // {"meta": true}: broadcasts carry {"seq","epoch"}
	since *Position // {"since": seq, "epoch": "e"}: resume after that position
}

// parseJoin reads the join payload: an object (or null). {"meta": true}
// opts in to sequence metadata; {"since": seq} (with "epoch", as a string
// or a number) resumes after a position and implies meta. Binary joins carry
// no options.
func parseJoin(f *frame) (joinParams, bool) {
	if f.binary || string(f.payload) == jsonNull {
		return joinParams{}, true
	}
	if len(f.payload) == 0 || f.payload[0] != '{' {
		return joinParams{}, false
	}
	var raw struct {
		Meta  any             `json:"meta"`
		Since json.RawMessage `json:"since"`
		Epoch json.RawMessage `json:"epoch"`
	}
	if err := json.Unmarshal(f.payload, &raw); err != nil {
		return joinParams{}, false
	}
	p := joinParams{meta: raw.Meta == true}
	if len(raw.Since) == 0 || string(raw.Since) == jsonNull {
		return p, true
	}
	seq, ok := jsonUint(raw.Since)
	if !ok {
		return joinParams{}, false
	}
	var epoch uint64
	if len(raw.Epoch) > 0 && string(raw.Epoch) != jsonNull {
		if epoch, ok = jsonUint(raw.Epoch); !ok {
			return joinParams{}, false
		}
	}
	p.meta, p.since = true, &Position{Epoch: epoch, Seq: seq}
	return p, true
}

// jsonUint reads an unsigned integer written as a JSON number or string
// (epochs exceed JavaScript's exact integers, so clients send them as
// strings).
func jsonUint(raw json.RawMessage) (uint64, bool) {
	s := string(raw)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// resume joins j after position from, if the broker keeps history. The
// reply says what was recovered: {"recovered": n, "epoch": "e", "seq": s}
// with the position the client resumes after, or, when history no longer
// reaches back, {"recovered": false, "reset": true, "epoch": "e", "seq": s}
// with where the topic is now, and the join goes on live from there.
func (c *conn) resume(ctx context.Context, f *frame, j *join, from Position) error {
	r, ok := c.h.broker.(Recoverer)
	if !ok {
		return errRecoveryUnsupported
	}
	err := c.h.hub.joinSince(ctx, j, r, from, func(rec Recovery) outItem {
		return replyItem(f, statusOK, recoveryResponse(rec.Recovered, rec.Start, false))
	})
	var gone *HistoryGoneError
	if !errors.As(err, &gone) {
		return err
	}
	j.private = nil
	c.h.stats.resets.Add(1)
	return c.h.hub.join(ctx, j, replyItem(f, statusOK, recoveryResponse(0, gone.Current, true)))
}

func recoveryResponse(n int, at Position, reset bool) []byte {
	b := []byte(`{"recovered":`)
	if reset {
		b = append(b, `false,"reset":true`...)
	} else {
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, `,"epoch":"`...)
	b = strconv.AppendUint(b, at.Epoch, 10)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, at.Seq, 10)
	return append(b, '}')
}

func (c *conn) handleLeave(f *frame) {
	j := c.lookup(f.topic, f.joinRef)
	member := false
	var unsub func() error
	if j != nil {
		member, unsub = c.h.hub.leave(j)
	}
	c.mu.Lock()
	c.enqueueLocked(replyItem(f, statusOK, []byte(emptyObject)))
	if member {
		c.enqueueLocked(closeItem(j.joinRef, f.topic))
	}
	c.mu.Unlock()
	c.h.hub.unsubscribe(f.topic, unsub)
}

// handlePublish publishes for the client. Broadcasts to this connection on
// the topic are held back while the publish is in flight, so the sender gets
// its reply before its own broadcast.
func (c *conn) handlePublish(f *frame, j *join) {
	event, body, reason := publishArgs(f)
	if reason != "" {
		c.refuseReason(f, reason)
		return
	}
	data := EncodeEnvelope(event, body, f.binary)
	c.mu.Lock()
	j.publishing = true
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.opCtx, c.h.opts.PublishTimeout)
	seq, err := c.h.broker.Publish(ctx, f.topic, data)
	timedOut := ctx.Err() != nil
	cancel()

	var reply outItem
	if err != nil {
		reason = reasonPublishFailed
		if timedOut {
			reason = reasonPublishTimeout
		}
		c.h.stats.errors.Add(1)
		c.h.log.Warn("websocket: publish failed", "conn", c.id, "topic", f.topic, "err", err)
		reply = replyItem(f, statusError, appendReasonResponse(nil, reason))
	} else {
		c.h.stats.publishes.Add(1)
	}
	c.mu.Lock()
	if err == nil {
		response := []byte(emptyObject)
		if j.meta {
			response = appendSeqResponse(nil, seq)
		}
		reply = replyItem(f, statusOK, response)
	}
	c.enqueueLocked(reply)
	j.publishing = false
	held := j.held
	j.held = nil
	for i := range held {
		c.pushLocked(held[i])
	}
	c.mu.Unlock()
}

// publishArgs extracts the event and body of a publish. A text publish has
// the payload [event, body] with a JSON object body; a binary push publishes
// its payload as event "publish", or as NAME for the event "publish:NAME".
func publishArgs(f *frame) (event string, body []byte, reason string) {
	if f.binary {
		event = eventPublish
		if name, ok := strings.CutPrefix(f.event, publishEventPrefix); ok {
			event = name
		}
		body = f.payload
	} else {
		var args []json.RawMessage
		if err := json.Unmarshal(f.payload, &args); err != nil || len(args) != publishPayloadElements {
			return "", nil, reasonPublishPayload
		}
		ev, ok := decodeOptString(args[0])
		if !ok || !ev.ok {
			return "", nil, reasonPublishPayload
		}
		event, body = ev.s, args[1]
		if len(body) == 0 || body[0] != '{' {
			return "", nil, reasonPublishBody
		}
	}
	if problem := topics.NameProblem(event, MaxEventLen); problem != "" {
		return "", nil, invalidEventPrefix + problem
	}
	if strings.HasPrefix(event, reservedEventPrefix) {
		return "", nil, reasonReservedEvent
	}
	return event, body, ""
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

func closeItem(joinRef optString, topic string) outItem {
	return outItem{raw: appendJSONMessage(nil, joinRef, joinRef, topic, eventClose, []byte(emptyObject))}
}

// replyItem builds a reply to f in f's format. A binary reply carries the
// JSON response as its payload.
func replyItem(f *frame, status string, response []byte) outItem {
	topic := f.topic
	if !f.topicOK {
		topic = topicPhoenix
	}
	if f.binary {
		if b, ok := appendBinaryReply(nil, f.joinRef, f.ref, topic, status, response); ok {
			return outItem{raw: b, binary: true}
		}
	}
	return outItem{raw: appendJSONReply(nil, f.joinRef, f.ref, topic, status, response)}
}

func (c *conn) reply(f *frame, status string, response []byte) {
	it := replyItem(f, status, response)
	c.mu.Lock()
	c.enqueueLocked(it)
	c.mu.Unlock()
}

// refuse answers a message that could not be parsed. The reply carries
// whatever refs and topic were recovered; when nothing was, it goes to the
// "phoenix" topic with null refs, which Phoenix clients ignore and people
// typing into a terminal can read.
func (c *conn) refuse(f *frame, err error) {
	reason := reasonMalformedJSON
	var fe *frameError
	if errors.As(err, &fe) {
		reason = fe.reason
	}
	c.refuseReason(f, reason)
}

func (c *conn) refuseReason(f *frame, reason string) {
	c.h.stats.errors.Add(1)
	c.h.log.Debug("websocket: refused message", "conn", c.id, "topic", f.topic, "event", f.event, "reason", reason)
	c.reply(f, statusError, appendReasonResponse(nil, reason))
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
		c.h.stats.slowConsumers.Add(1)
		c.h.log.Info("websocket: closing slow consumer", "conn", c.id, "queued", c.queued)
		c.shutdownLocked(cws.StatusTryAgainLater, reasonSlowConsumer, false)
		return false
	}
	c.queued += n
	return true
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

// shutdown starts closing the connection: the writer sends a close message
// with code and reason (after what is queued if flush is set) and the reader
// stops once the close handshake ends. Only the first call counts.
func (c *conn) shutdown(code cws.StatusCode, reason string, flush bool) {
	c.mu.Lock()
	c.shutdownLocked(code, reason, flush)
	c.mu.Unlock()
}

func (c *conn) shutdownLocked(code cws.StatusCode, reason string, flush bool) {
	if c.closed {
		return
	}
	c.closed = true
	c.closeCode, c.closeReason, c.flushOnClose = code, reason, flush
	close(c.done)
	c.opCancel()
	c.startWriterLocked()
}

// kill cuts the connection at once: pending reads and writes fail.
func (c *conn) kill() {
	c.shutdown(cws.StatusGoingAway, reasonShutdown, false)
	c.mu.Lock()
	c.killed = true
	raw := c.raw
	c.mu.Unlock()
	c.cancel()
	if raw != nil {
		_ = raw.Close()
	}
}

// writeLoop writes what is queued until the queue is empty, then exits; once
// the connection shuts down it sends the close message and exits. There is at
// most one writeLoop at a time (c.writing).
func (c *conn) writeLoop() {
	defer c.writer.Done()
	for {
		c.mu.Lock()
		if c.closed {
			code, reason, flush := c.closeCode, c.closeReason, c.flushOnClose
			c.mu.Unlock()
			c.closeWS(code, reason, flush)
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
func (c *conn) closeWS(code cws.StatusCode, reason string, flush bool) {
	if flush {
		if err := c.flushQueue(); err != nil {
			c.abort(err)
		}
	}
	// The close handshake is bounded by WriteTimeout too: a client that does
	// not answer the close message is cut.
	cut := time.AfterFunc(c.h.opts.WriteTimeout, func() { _ = c.raw.Close() })
	if err := c.ws.Close(code, reason); err != nil {
		c.h.log.Debug("websocket: close", "conn", c.id, "err", err)
	}
	cut.Stop()
}

// abort ends a connection whose writes fail: without a close handshake, as
// the client does not take data.
func (c *conn) abort(err error) {
	c.h.log.Debug("websocket: write failed", "conn", c.id, "err", err)
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
	if ferr := c.raw.uncork(); err == nil {
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
