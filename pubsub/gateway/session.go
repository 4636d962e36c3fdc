package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// Server-side channels: topics served by code of the application rather
// than by the broker. The application maps topic names to Channel values
// (Options.Channels); a join of such a topic calls Channel.Join with a
// Session, the handle through which the channel talks to that one client
// for as long as the join lasts.

var (
	// ErrSessionEnded is returned by Session.Push once the join has ended,
	// and is the cause of a session's context when the channel ended it
	// with Session.End(nil).
	ErrSessionEnded = errors.New("gateway: channel session ended")
	// ErrLeft is the cause of a session's context when the client left the
	// topic (phx_leave).
	ErrLeft = errors.New("gateway: client left the channel")
	// ErrRejoined is the cause of a session's context when the client
	// joined the same topic again, which replaces the join.
	ErrRejoined = errors.New("gateway: client joined the channel again")
	// ErrDisconnected is the cause of a session's context when the
	// connection closed (the client went away, was idle, was too slow, or
	// the Handler shut down).
	ErrDisconnected = errors.New("gateway: connection closed")
	// ErrSlowConsumer is returned by Session.Push when the message did not
	// fit the connection's outbound queue: the connection is being closed
	// as a slow consumer, and the session ends with it.
	ErrSlowConsumer = errors.New("gateway: slow consumer")
	// ErrInvalidPayload is returned by Session.Push for a payload that is
	// not valid UTF-8 JSON.
	ErrInvalidPayload = errors.New("gateway: payload is not valid UTF-8 JSON")
)

// Channel serves the topics that Options.Channels routes to it, as a
// Phoenix channel module does on a Phoenix server.
//
// Join is called for each join of such a topic, on the goroutine that runs
// the connection's channel operations one at a time: while it runs, that
// connection's other joins, leaves and events wait (heartbeats do not). ctx
// ends at Options.JoinTimeout or when the connection closes; s lives until
// the join ends (see Session.Context). Join returns the response of the ok
// reply (nil for {}), or an error: the client then gets an error reply
// whose reason is the error's [Reason] if it has one, "join timeout" if ctx
// expired, and "join failed" otherwise (the error itself is logged, not
// sent). A refused join never closes the socket. Before it returns, Join
// may register the session's event handler (Session.HandleIn) and push
// messages (Session.Push): they reach the client after the ok reply, and are
// dropped if the join is refused.
//
// Join may be called concurrently, for different connections and sessions.
type Channel interface {
	Join(ctx context.Context, s *Session, topic string, payload json.RawMessage) (reply json.RawMessage, err error)
}

// ChannelFunc adapts a function to the Channel interface.
type ChannelFunc func(ctx context.Context, s *Session, topic string, payload json.RawMessage) (json.RawMessage, error)

// Join calls f.
func (f ChannelFunc) Join(ctx context.Context, s *Session, topic string, payload json.RawMessage) (json.RawMessage, error) {
	return f(ctx, s, topic, payload)
}

// EventHandler handles an event a client pushes on a joined channel topic
// (Phoenix's handle_in). It returns the response of the ok reply (nil for
// {}) or an error, which the client gets as an error reply as for Join
// ("event failed" when the error has no [Reason], "event timeout" when ctx
// expired). ctx ends at Options.EventTimeout and when the session ends.
//
// Handlers run on the connection's channel goroutine, one at a time and in
// the order the client sent the events; the connection's joins and leaves
// wait meanwhile.
type EventHandler func(ctx context.Context, event string, payload json.RawMessage) (reply json.RawMessage, err error)

// ReasonError is an error whose Reason is sent to the client as the reason
// of an error reply {"status":"error","response":{"reason":Reason}}. Err,
// if set, is the cause, for logs and errors.Is; it is not sent.
type ReasonError struct {
	Reason string
	Err    error
}

// Reason returns an error that refuses a join or an event with reason, as
// sent to the client.
func Reason(reason string) error { return &ReasonError{Reason: reason} }

// Error returns the reason, and the cause if there is one.
func (e *ReasonError) Error() string {
	if e.Err != nil {
		return "gateway: " + e.Reason + ": " + e.Err.Error()
	}
	return "gateway: " + e.Reason
}

// Unwrap returns the cause.
func (e *ReasonError) Unwrap() error { return e.Err }

type sessionState uint8

const (
	sessionJoining sessionState = iota // Join runs; pushes are held
	sessionActive                      // joined; pushes are queued
	sessionEnded                       // left, ended, refused or disconnected
)

// Session is one client's join of a channel topic: the channel's handle to
// that client. Its methods may be called from any goroutine, at any time,
// also after the join ended (they then do nothing, or report
// ErrSessionEnded).
type Session struct {
	conn    *conn
	topic   string
	joinRef optString
	ident   Identity
	ctx     context.Context
	cancel  context.CancelCauseFunc

	// Guarded by conn.mu.
	state   sessionState
	join    *join     // the connection's join, once active
	held    []outItem // pushes made before the join reply was queued
	handler EventHandler
}

func newSession(c *conn, topic string, joinRef optString) *Session {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Session{conn: c, topic: topic, joinRef: joinRef, ident: c.identity, ctx: ctx, cancel: cancel}
}

// Topic returns the topic joined.
func (s *Session) Topic() string { return s.topic }

// Identity returns the identity the connection authenticated with
// (Options.AuthenticateConn); its User is "" for an anonymous connection.
func (s *Session) Identity() Identity { return s.ident }

// Context returns a context that is cancelled when the join ends; its
// cause (context.Cause) says why: ErrLeft, ErrRejoined, ErrDisconnected,
// the error given to End (ErrSessionEnded for nil), or, for a join that was
// refused, the error Join returned. A channel releases what the session
// holds once it is done, for example with context.AfterFunc.
func (s *Session) Context() context.Context { return s.ctx }

// HandleIn sets the handler of the events the client pushes on the topic.
// Without one, every event gets the error reason "unknown event". Set it in
// Join: events the client sends after the join reply are handled with the
// handler set at the time they are handled.
func (s *Session) HandleIn(h EventHandler) {
	c := s.conn
	c.mu.Lock()
	s.handler = h
	c.mu.Unlock()
}

// Push sends the client a server push [join_ref, null, topic, event,
// payload], carrying the join's join_ref. A nil payload sends {}. Push never
// blocks: the message goes to the connection's bounded outbound queue, and
// a connection whose queue overflows is closed as a slow consumer (Push
// then returns ErrSlowConsumer and the session ends). It returns
// ErrSessionEnded once the join has ended, and an error wrapping
// ErrInvalidEvent or ErrInvalidPayload for an event name that is invalid or
// starts with "phx_", or a payload that is not UTF-8 JSON. Pushes made
// while Join runs are sent after the join reply. Pushes are sent in the
// order Push was called.
func (s *Session) Push(event string, payload json.RawMessage) error {
	if problem := topics.NameProblem(event, MaxEventLen); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, problem)
	}
	if strings.HasPrefix(event, reservedEventPrefix) {
		return fmt.Errorf("%w: %q is reserved", ErrInvalidEvent, reservedEventPrefix)
	}
	if len(payload) == 0 {
		payload = json.RawMessage(emptyObject)
	} else if !json.Valid(payload) || !utf8.Valid(payload) {
		return ErrInvalidPayload
	}
	it := outItem{raw: appendJSONMessage(nil, s.joinRef, optString{}, s.topic, event, payload)}
	c := s.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case s.state == sessionEnded:
		return ErrSessionEnded
	case c.closed:
		return ErrSessionEnded
	case s.state == sessionJoining:
		if !c.reserveLocked(it.size()) {
			return ErrSlowConsumer
		}
		s.held = append(s.held, it)
	default:
		c.enqueueLocked(it)
		if c.closed {
			return ErrSlowConsumer
		}
	}
	c.h.stats.channelPushes.Add(1)
	return nil
}

// End ends the join from the server side. With a nil err the client gets
// [join_ref, join_ref, topic, "phx_close", {}] (the Phoenix client then
// considers the channel closed and does not rejoin); with an error, it gets
// "phx_error" (the Phoenix client rejoins, with backoff) and the error is
// the cause of the session's context. Called while Join runs, End makes the
// join fail. End is idempotent.
func (s *Session) End(err error) {
	c := s.conn
	event := eventError
	if err == nil {
		event = eventClose
		err = ErrSessionEnded
	}
	c.mu.Lock()
	active := s.state == sessionActive
	if !s.finishLocked() {
		c.mu.Unlock()
		return
	}
	if active && !c.closed {
		c.enqueueLocked(outItem{raw: appendJSONMessage(nil, s.joinRef, s.joinRef, s.topic, event, []byte(emptyObject))})
	}
	c.mu.Unlock()
	s.cancel(err)
}

// finishLocked marks the session ended, drops what it held, and removes its
// join from the connection. It reports false if the session had already
// ended. The caller holds conn.mu and cancels s.ctx afterwards.
func (s *Session) finishLocked() bool {
	c := s.conn
	if s.state == sessionEnded {
		return false
	}
	if s.state == sessionActive {
		c.h.stats.sessions.Add(-1)
	}
	s.state = sessionEnded
	for i := range s.held {
		c.queued -= s.held[i].size()
	}
	s.held = nil
	if j := s.join; j != nil && c.joins[s.topic] == j {
		delete(c.joins, s.topic)
	}
	return true
}

// endSessionsLocked ends every session of c as the connection shuts down
// and returns them, for the caller to cancel their contexts. The caller
// holds c.mu.
func (c *conn) endSessionsLocked() []*Session {
	var ended []*Session
	for _, j := range c.joins {
		if s := j.session; s != nil && s.finishLocked() {
			ended = append(ended, s)
		}
	}
	return ended
}

// handleChannelJoin runs a join of a topic served by ch.
func (c *conn) handleChannelJoin(f *frame, ch Channel) {
	payload, ok := channelPayload(f)
	if !ok {
		c.refuseReason(f, reasonChannelPayload)
		return
	}
	c.mu.Lock()
	var replaced *Session
	if old := c.joins[f.topic]; old != nil {
		// A join of a joined topic replaces the old join: phx_close for
		// the old join_ref, then the new join runs.
		c.enqueueLocked(closeItem(old.joinRef, f.topic))
		if old.session != nil && old.session.finishLocked() {
			replaced = old.session
		}
		delete(c.joins, f.topic)
	}
	full := len(c.joins) >= c.h.opts.MaxTopicsPerConn
	c.mu.Unlock()
	if replaced != nil {
		replaced.cancel(ErrRejoined)
	}
	if full {
		c.refuseReason(f, reasonTooManyTopics)
		return
	}

	s := newSession(c, f.topic, f.joinRef)
	ctx, cancel := context.WithTimeout(c.opCtx, c.h.opts.JoinTimeout)
	reply, err := c.callJoin(ctx, ch, s, f.topic, payload)
	timedOut := ctx.Err() != nil && c.opCtx.Err() == nil
	cancel()
	if err == nil && len(reply) == 0 {
		reply = json.RawMessage(emptyObject)
	}
	if err == nil && (!json.Valid(reply) || !utf8.Valid(reply)) {
		err = fmt.Errorf("join reply: %w", ErrInvalidPayload)
	}

	j := &join{conn: c, topic: f.topic, joinRef: f.joinRef, session: s}
	c.mu.Lock()
	switch {
	case c.closed:
		s.finishLocked()
		c.mu.Unlock()
		s.cancel(ErrDisconnected)
		return
	case err == nil && s.state == sessionEnded:
		// The channel ended the session while Join ran.
		c.mu.Unlock()
		c.refuseReason(f, reasonFor(context.Cause(s.ctx), reasonJoinFailed))
		return
	case err != nil:
		s.finishLocked()
		c.mu.Unlock()
		s.cancel(err)
		reason := reasonFor(err, reasonJoinFailed)
		if timedOut && !isReasonError(err) {
			reason = reasonJoinTimeout
		}
		if !isReasonError(err) {
			c.h.log.Warn("gateway: channel join failed", "conn", c.id, "topic", f.topic, "err", err)
		}
		c.refuseReason(f, reason)
		return
	}
	s.join = j
	s.state = sessionActive
	c.joins[f.topic] = j
	c.enqueueLocked(replyItem(f, statusOK, reply))
	held := s.held
	s.held = nil
	for i := range held {
		c.pushLocked(held[i])
	}
	c.mu.Unlock()
	c.h.stats.joins.Add(1)
	c.h.stats.sessions.Add(1)
}

// handleChannelLeave answers a phx_leave of a channel join and ends its session.
func (c *conn) handleChannelLeave(f *frame, j *join) {
	s := j.session
	c.mu.Lock()
	member := s.finishLocked()
	c.enqueueLocked(replyItem(f, statusOK, []byte(emptyObject)))
	if member {
		c.enqueueLocked(closeItem(j.joinRef, f.topic))
	}
	c.mu.Unlock()
	if member {
		s.cancel(ErrLeft)
	}
}

// handleChannelEvent hands a client event to the session's handler and
// replies with its outcome.
func (c *conn) handleChannelEvent(f *frame, j *join) {
	s := j.session
	c.mu.Lock()
	h := s.handler
	c.mu.Unlock()
	if h == nil || strings.HasPrefix(f.event, reservedEventPrefix) {
		c.refuseReason(f, reasonUnknownEvent)
		return
	}
	payload, ok := channelPayload(f)
	if !ok {
		c.refuseReason(f, reasonChannelPayload)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, c.h.opts.EventTimeout)
	reply, err := c.callEvent(ctx, h, f.event, payload)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if err == nil && len(reply) == 0 {
		reply = json.RawMessage(emptyObject)
	}
	if err == nil && (!json.Valid(reply) || !utf8.Valid(reply)) {
		err = fmt.Errorf("event reply: %w", ErrInvalidPayload)
	}
	if err != nil {
		reason := reasonFor(err, reasonEventFailed)
		if timedOut && !isReasonError(err) {
			reason = reasonEventTimeout
		}
		if !isReasonError(err) {
			c.h.log.Warn("gateway: channel event failed", "conn", c.id, "topic", f.topic, "event", f.event, "err", err)
		}
		c.refuseReason(f, reason)
		return
	}
	c.reply(f, statusOK, reply)
}

// callJoin runs ch.Join; a panic is an error.
func (c *conn) callJoin(ctx context.Context, ch Channel, s *Session, topic string, payload json.RawMessage) (reply json.RawMessage, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.h.log.Error("gateway: channel join panicked", "topic", topic, "panic", v, "stack", string(debug.Stack()))
			reply, err = nil, fmt.Errorf("gateway: channel join panicked: %v", v)
		}
	}()
	return ch.Join(ctx, s, topic, payload)
}

// callEvent runs an event handler; a panic is an error.
func (c *conn) callEvent(ctx context.Context, h EventHandler, event string, payload json.RawMessage) (reply json.RawMessage, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.h.log.Error("gateway: channel event handler panicked", "event", event, "panic", v, "stack", string(debug.Stack()))
			reply, err = nil, fmt.Errorf("gateway: channel event handler panicked: %v", v)
		}
	}()
	return h(ctx, event, payload)
}

// channelPayload returns the payload of a channel join or event: the JSON
// of a text message, or the bytes of a binary one if they are UTF-8 JSON.
// An empty binary payload is {}.
func channelPayload(f *frame) (json.RawMessage, bool) {
	if !f.binary {
		return json.RawMessage(f.payload), true
	}
	if len(f.payload) == 0 {
		return json.RawMessage(emptyObject), true
	}
	if !json.Valid(f.payload) || !utf8.Valid(f.payload) {
		return nil, false
	}
	return json.RawMessage(f.payload), true
}

func isReasonError(err error) bool {
	var re *ReasonError
	return errors.As(err, &re)
}

// reasonFor returns the Reason of err, or fallback.
func reasonFor(err error, fallback string) string {
	var re *ReasonError
	if errors.As(err, &re) && re.Reason != "" {
		return re.Reason
	}
	return fallback
}

// channelRouter maps topics to the channels of Options.Channels.
type channelRouter struct {
	exact    map[string]Channel
	prefixes []channelPrefix // longest first
}

type channelPrefix struct {
	prefix string
	ch     Channel
}

// newChannelRouter builds the router of Options.Channels. Keys ending in
// "*" are prefixes; others are exact names. Empty keys and nil channels are
// dropped with a warning.
func newChannelRouter(channels map[string]Channel, warn func(msg string, args ...any)) *channelRouter {
	if len(channels) == 0 {
		return nil
	}
	r := &channelRouter{exact: make(map[string]Channel)}
	for pattern, ch := range channels {
		switch {
		case pattern == "" || ch == nil:
			warn("gateway: dropping invalid channel route", "pattern", pattern, "nil_channel", ch == nil)
		case strings.HasSuffix(pattern, "*"):
			r.prefixes = append(r.prefixes, channelPrefix{prefix: strings.TrimSuffix(pattern, "*"), ch: ch})
		default:
			r.exact[pattern] = ch
		}
	}
	slices.SortFunc(r.prefixes, func(a, b channelPrefix) int {
		if d := len(b.prefix) - len(a.prefix); d != 0 {
			return d
		}
		return strings.Compare(a.prefix, b.prefix)
	})
	return r
}

// route returns the channel serving topic, or nil for a broker topic.
func (r *channelRouter) route(topic string) Channel {
	if r == nil {
		return nil
	}
	if ch, ok := r.exact[topic]; ok {
		return ch
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(topic, p.prefix) {
			return p.ch
		}
	}
	return nil
}
