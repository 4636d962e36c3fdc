package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// A connection's channel operations, run one at a time by its worker:
// phx_join (and the recovery of a join that resumes after a position),
// phx_leave and publish, and the replies and refusals the connection sends.

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
	// session is set for a join of a channel topic (Options.Channels),
	// which has no broker subscription; read-only.
	session *Session
	// presence is set, before the join is shared, when the broker tracks
	// presence for the topic (presence.go).
	presence *joinPresence
	// queue is the queue group the join is a member of ("" for none; see
	// QueueBroker); read-only.
	queue string
}

func (c *conn) handleJoin(f *frame) {
	if c.h.opts.DenyAnonymous && c.identity.User == "" {
		c.refuseReason(f, reasonUnauthorized)
		return
	}
	p, reason := parseJoin(f)
	if reason != "" {
		c.refuseReason(f, reason)
		return
	}
	if p.presenceRefusal != "" {
		c.refuseReason(f, p.presenceRefusal)
		return
	}
	if !c.authorize(f, ActionSubscribe) || p.since != nil && !c.authorize(f, ActionHistory) {
		return
	}
	meta := p.meta
	c.mu.Lock()
	if old := c.joins[f.topic]; old != nil && (p.since != nil || p.queue != "" || old.queue != "") {
		// Resuming, or joining or leaving a queue group, replaces the join
		// and its subscription.
		c.mu.Unlock()
		_, unsub := c.h.hub.leave(old)
		c.h.hub.unsubscribe(f.topic, unsub)
		c.mu.Lock()
		c.enqueueLocked(closeItem(old.joinRef, f.topic))
	} else if old != nil {
		// A join of a joined topic replaces the old join: phx_close for the
		// old join_ref, then the reply. The broker subscription stays, and
		// so does the presence meta; the set is sent again for the new
		// join_ref.
		c.enqueueLocked(closeItem(old.joinRef, f.topic))
		old.joinRef, old.meta = f.joinRef, meta
		c.enqueueLocked(replyItem(f, statusOK, []byte(emptyObject)))
		c.mu.Unlock()
		old.attachPresence()
		c.h.stats.joins.Add(1)
		return
	}
	full := len(c.joins) >= c.h.opts.MaxTopicsPerConn
	c.mu.Unlock()
	if full {
		c.refuseReason(f, reasonTooManyTopics)
		return
	}
	j := &join{conn: c, topic: f.topic, joinRef: f.joinRef, meta: meta, queue: p.queue}
	ctx, cancel := context.WithTimeout(c.opCtx, c.h.opts.JoinTimeout)
	if pr := c.h.presencer(f.topic); pr != nil {
		if reason := c.startPresence(ctx, pr, j, p.presence); reason != "" {
			cancel()
			c.refuseReason(f, reason)
			return
		}
	}
	var err error
	switch {
	case p.since != nil:
		err = c.resume(ctx, f, j, *p.since)
	case p.queue != "":
		err = c.h.hub.joinQueue(ctx, j, p.queue, replyItem(f, statusOK, []byte(emptyObject)))
	default:
		err = c.h.hub.join(ctx, j, replyItem(f, statusOK, []byte(emptyObject)))
	}
	cancel()
	if err != nil {
		j.endPresence()
	} else {
		j.attachPresence()
	}
	switch {
	case err == nil:
	case errors.Is(err, errRecoveryUnsupported):
		c.refuseReason(f, reasonNoRecovery)
	case errors.Is(err, errQueueUnsupported):
		c.refuseReason(f, reasonNoQueue)
	case errors.Is(err, errConnClosed):
	case errors.Is(err, errJoinTimeout):
		c.refuseReason(f, reasonJoinTimeout)
	default:
		c.refuseReason(f, reasonSubscribeFailed)
	}
}

// joinParams are the options a join payload carries.
type joinParams struct {
	meta     bool      // {"meta": true}: broadcasts carry {"seq","epoch"}
	since    *Position // {"since": seq, "epoch": "e"}: resume after that position
	queue    string    // {"queue": "workers"}: a member of that queue group
	presence presenceParams
	// presenceRefusal is why {"presence": ...} is refused, or "".
	presenceRefusal string
}

// parseJoin reads the join payload: an object (or null). {"meta": true}
// opts in to sequence metadata; {"since": seq} (with "epoch", as a string
// or a number) resumes after a position and implies meta; {"queue": "g"}
// makes the channel a member of queue group g (see QueueBroker), which
// takes no since. Binary joins carry no options. It returns the reason a
// payload is refused, or "".
func parseJoin(f *frame) (joinParams, string) {
	if f.binary || string(f.payload) == jsonNull {
		return joinParams{}, ""
	}
	if len(f.payload) == 0 || f.payload[0] != '{' {
		return joinParams{}, reasonJoinPayload
	}
	var raw struct {
		Meta     any             `json:"meta"`
		Since    json.RawMessage `json:"since"`
		Epoch    json.RawMessage `json:"epoch"`
		Presence json.RawMessage `json:"presence"`
		Queue    json.RawMessage `json:"queue"`
	}
	if err := json.Unmarshal(f.payload, &raw); err != nil {
		return joinParams{}, reasonJoinPayload
	}
	p := joinParams{meta: raw.Meta == true}
	p.presence, p.presenceRefusal = parsePresence(raw.Presence)
	if len(raw.Queue) > 0 && string(raw.Queue) != jsonNull {
		// A queue member takes some of the messages, never a replay.
		if json.Unmarshal(raw.Queue, &p.queue) != nil || !validQueueGroup(p.queue) {
			return joinParams{}, reasonQueueGroup
		}
		if len(raw.Since) > 0 && string(raw.Since) != jsonNull {
			return joinParams{}, reasonQueueSince
		}
		return p, ""
	}
	if len(raw.Since) == 0 || string(raw.Since) == jsonNull {
		return p, ""
	}
	seq, ok := jsonUint(raw.Since)
	if !ok {
		return joinParams{}, reasonJoinPayload
	}
	var epoch uint64
	if len(raw.Epoch) > 0 && string(raw.Epoch) != jsonNull {
		if epoch, ok = jsonUint(raw.Epoch); !ok {
			return joinParams{}, reasonJoinPayload
		}
	}
	p.meta, p.since = true, &Position{Epoch: epoch, Seq: seq}
	return p, ""
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
	if !c.authorize(f, ActionPublish) {
		return
	}
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
		c.h.log.Warn("gateway: publish failed", "conn", c.id, "topic", f.topic, "err", err)
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
	c.h.log.Debug("gateway: refused message", "conn", c.id, "topic", f.topic, "event", f.event, "reason", reason)
	c.reply(f, statusError, appendReasonResponse(nil, reason))
}
