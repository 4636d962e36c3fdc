package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// A session is one client's join of the inbox. It follows, on the pubsub
// node, the ring topic of every notification topic the user subscribes to
// and the user's control topic, and keeps the user's read state of each
// topic: the head (the last sequence number it knows of, from the
// database at the join and from every delivery since) and the read cursor
// (from the database at the join and from every read since, on any
// device). Unread counts are head − cursor, kept exact without a query per
// notification.
//
// Concurrency: deliveries of the pubsub subscriptions run on the node's
// dispatcher workers, control events are applied in order by one worker
// goroutine of the session (started when there is something to apply),
// client events run on the gateway's connection goroutine. session.mu
// guards the state and is held while pushing, so that the client receives
// the counts in the order they changed. Lock order: session.mu, then the
// gateway's (Session.Push never calls back).

// Events the inbox pushes, and the client events it handles.
const (
	EventNotification = "notification" // {"topic","seq","epoch","body"}
	EventUnread       = "unread"       // {"unread":total,"topic":T,"topic_unread":n}
	EventRead         = "read"         // pushed: {"topic","read_seq"}; from the client: {"topic","seq"}
	EventReadAll      = "read_all"     // from the client: {}
	EventReset        = "reset"        // {"topic","epoch","seq"}
	EventSubscribed   = "subscribed"   // {"name","unread","last_seq","read_seq","epoch"}
	EventUnsubscribed = "unsubscribed" // {"topic"}
)

const (
	// followParallel bounds the subscriptions a join makes at once.
	followParallel = 16
	// maxControlQueue bounds the control events waiting for a session's
	// worker; past it the session ends with phx_error and its client
	// rejoins with a fresh state.
	maxControlQueue = 1024
)

var errControlBacklog = errors.New("inbox: too many control events waiting")

type session struct {
	ch   *Channel
	gs   *gateway.Session
	user string

	mu      sync.Mutex
	ended   bool
	joined  bool // the reply is built: count changes are pushed from now on
	counted bool // in the presence and sessions counts
	topics  map[string]*topicState
	total   uint64 // the sum of the topics' unread counts
	control *pubsub.Subscription
	queue   []notify.ControlEvent // for the worker
	working bool                  // the worker runs
}

// topicState is a session's state of one topic. Guarded by session.mu.
type topicState struct {
	name  string
	sub   *pubsub.Subscription
	epoch uint64
	head  uint64
	read  uint64
	// resetAt is set while a reset event is due, before any notification
	// of the topic: the position the client is to start over from.
	resetAt *pubsub.Position
}

func (t *topicState) unread() uint64 {
	if t.head > t.read {
		return t.head - t.read
	}
	return 0
}

func newSession(c *Channel, gs *gateway.Session, user string) *session {
	s := &session{ch: c, gs: gs, user: user, topics: make(map[string]*topicState)}
	gs.HandleIn(s.handleIn)
	return s
}

// start makes the session's subscriptions and returns the join reply.
func (s *session) start(ctx context.Context, positions map[string]position) (json.RawMessage, error) {
	c := s.ch
	// The control topic first: a change committed after the database is
	// read below reaches the session as an event.
	control, err := s.subscribe(ctx, notify.UserTopic(s.user), s.onControl)
	if err != nil {
		return nil, &gateway.ReasonError{Reason: ReasonSubscribe, Err: err}
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		_ = control.Unsubscribe()
		return nil, context.Cause(s.gs.Context())
	}
	s.control = control
	s.mu.Unlock()

	states, err := c.svc.Subscriptions(ctx, s.user)
	if err != nil {
		return nil, reasonOf(err)
	}
	if len(states) > c.opts.MaxTopics {
		return nil, gateway.Reason(fmt.Sprintf("%s: %d subscriptions, at most %d", ReasonTooManyTopics, len(states), c.opts.MaxTopics))
	}
	if err := s.followAll(ctx, states, positions); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, context.Cause(s.gs.Context())
	}
	s.joined = true
	s.counted = true
	c.stats.sessions.Add(1)
	c.presence.add(s.user)
	reply, err := json.Marshal(s.inboxLocked())
	s.kickLocked()
	return reply, err
}

// followAll follows every topic of states, a few at a time.
func (s *session) followAll(ctx context.Context, states []notify.TopicState, positions map[string]position) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, followParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, st := range states {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		pos, has := positions[st.Name]
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.follow(ctx, st, pos, has); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// follow subscribes to one topic the database says the user subscribes
// to. Without a position from the client, the subscription starts after
// the head the database read: notifications committed since are pushed,
// the rest is in the counts. With one, it starts after the client's
// position, unless the topic's store no longer serves it or it is more
// than MaxReplay behind: the client is then sent a reset event first.
func (s *session) follow(ctx context.Context, st notify.TopicState, pos position, hasPos bool) error {
	ts := &topicState{name: st.Name, head: st.LastSeq, read: st.ReadSeq}
	from := pubsub.Position{Seq: st.LastSeq}
	if hasPos {
		if pos.seq < st.LastSeq && st.LastSeq-pos.seq > s.ch.opts.MaxReplay {
			ts.resetAt = &pubsub.Position{Seq: st.LastSeq}
		} else {
			from = pubsub.Position{Epoch: pos.epoch, Seq: pos.seq}
		}
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return context.Cause(s.gs.Context())
	}
	s.topics[ts.name] = ts
	s.total += ts.unread()
	s.mu.Unlock()

	ring := notify.RingTopic(ts.name)
	deliver := func(m pubsub.Message) { s.deliver(ts, m) }
	sub, err := s.subscribe(ctx, ring, deliver, pubsub.Since(from.Epoch, from.Seq))
	var gone *pubsub.HistoryGoneError
	if errors.As(err, &gone) {
		// The position is not served any more (trimmed, another epoch, or
		// ahead of the topic): start over from where the topic is.
		s.mu.Lock()
		cur := gone.Current
		ts.resetAt = &cur
		s.mu.Unlock()
		sub, err = s.subscribe(ctx, ring, deliver, pubsub.Since(cur.Epoch, cur.Seq))
		if errors.As(err, &gone) {
			sub, err = s.subscribe(ctx, ring, deliver)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.topics[ts.name] == ts {
			delete(s.topics, ts.name)
			s.total -= ts.unread()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &gateway.ReasonError{Reason: ReasonSubscribe, Err: fmt.Errorf("topic %q: %w", ts.name, err)}
	}
	if s.ended {
		_ = sub.Unsubscribe() // returns at once; no lock of ours is taken
		return context.Cause(s.gs.Context())
	}
	ts.sub = sub
	start := sub.Start()
	if ts.epoch == 0 {
		ts.epoch = start.Epoch
	}
	if ts.resetAt != nil {
		s.pushResetLocked(ts, start.Epoch)
	}
	s.raiseHeadLocked(ts, start.Seq)
	return nil
}

// subscribe makes one subscription of the session. One that the node
// ends later (overflow, node closing) ends the session with phx_error, and
// the client rejoins from its positions; a subscription that fails in
// SubscribeFunc (the node ends it then too) is only an error.
func (s *session) subscribe(ctx context.Context, topic string, fn func(pubsub.Message), opts ...pubsub.SubscribeOption) (*pubsub.Subscription, error) {
	w := &subWatch{}
	all := make([]pubsub.SubscribeOption, 0, len(opts)+2)
	all = append(all, opts...)
	all = append(all, pubsub.OnClose(func(err error) {
		if w.closed(err) {
			s.nodeEnded(topic, err)
		}
	}))
	if s.ch.opts.Buffer > 0 {
		all = append(all, pubsub.WithBuffer(s.ch.opts.Buffer))
	}
	sub, err := s.ch.node.SubscribeFunc(ctx, topic, fn, all...)
	if ended := w.subscribed(err); ended != nil {
		s.nodeEnded(topic, ended)
	}
	return sub, err
}

// nodeEnded ends the session after the node ended one of its subscriptions.
func (s *session) nodeEnded(topic string, err error) {
	s.ch.log.Info("inbox: subscription ended by the node", "user", s.user, "topic", topic, "err", err)
	s.gs.End(fmt.Errorf("inbox: subscription of %s ended: %w", topic, err))
}

// subWatch tells a subscription that the node ended from one whose
// SubscribeFunc failed: OnClose is called in both cases, maybe before
// SubscribeFunc returns.
type subWatch struct {
	mu      sync.Mutex
	state   uint8 // 0: subscribing, 1: live, 2: failed
	pending error // OnClose's error while subscribing
}

// closed records OnClose; it reports whether the session is to end now.
func (w *subWatch) closed(err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case 0:
		w.pending = err
		return false
	case 1:
		return true
	}
	return false
}

// subscribed records SubscribeFunc's outcome; it returns the error of an
// OnClose that came meanwhile on a subscription that succeeded.
func (w *subWatch) subscribed(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.state = 2
		return nil
	}
	w.state = 1
	return w.pending
}

// deliver handles a notification of ts's topic: a notification event,
// then an unread event if it is new to the counts.
func (s *session) deliver(ts *topicState, m pubsub.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.topics[ts.name] != ts {
		return
	}
	if ts.resetAt != nil {
		s.pushResetLocked(ts, m.Epoch)
	}
	if ts.epoch != 0 && m.Epoch != ts.epoch {
		s.ch.log.Warn("inbox: topic started a new epoch", "topic", ts.name, "epoch", m.Epoch, "was", ts.epoch)
	}
	ts.epoch = m.Epoch
	body := json.RawMessage(m.Data)
	if !json.Valid(body) {
		s.ch.log.Warn("inbox: notification body is not JSON", "topic", ts.name, "seq", m.Seq)
		body = json.RawMessage("null")
	}
	s.pushLocked(EventNotification, notificationEvent{Topic: ts.name, Seq: m.Seq, Epoch: strconv.FormatUint(m.Epoch, 10), Body: body})
	s.ch.stats.notifications.Add(1)
	s.raiseHeadLocked(ts, m.Seq)
}

type notificationEvent struct {
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	Epoch string          `json:"epoch"`
	Body  json.RawMessage `json:"body"`
}

type unreadEvent struct {
	Unread      uint64 `json:"unread"`
	Topic       string `json:"topic"`
	TopicUnread uint64 `json:"topic_unread"`
}

type readEvent struct {
	Topic   string `json:"topic"`
	ReadSeq uint64 `json:"read_seq"`
}

type resetEvent struct {
	Topic string `json:"topic"`
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

type topicEntry struct {
	Name    string `json:"name"`
	Unread  uint64 `json:"unread"`
	LastSeq uint64 `json:"last_seq"`
	ReadSeq uint64 `json:"read_seq"`
	Epoch   string `json:"epoch"`
}

type inboxReply struct {
	Unread uint64       `json:"unread"`
	Topics []topicEntry `json:"topics"`
}

// readReply answers a client's read: the unread event's fields and the
// topic's state.
type readReply struct {
	Unread      uint64 `json:"unread"`
	Topic       string `json:"topic"`
	TopicUnread uint64 `json:"topic_unread"`
	LastSeq     uint64 `json:"last_seq"`
	ReadSeq     uint64 `json:"read_seq"`
}

func entryOf(ts *topicState) topicEntry {
	return topicEntry{Name: ts.name, Unread: ts.unread(), LastSeq: ts.head, ReadSeq: ts.read, Epoch: strconv.FormatUint(ts.epoch, 10)}
}

// inboxLocked is the user's inbox as the session knows it.
func (s *session) inboxLocked() inboxReply {
	r := inboxReply{Unread: s.total, Topics: make([]topicEntry, 0, len(s.topics))}
	for _, ts := range s.topics {
		r.Topics = append(r.Topics, entryOf(ts))
	}
	slices.SortFunc(r.Topics, func(a, b topicEntry) int { return strings.Compare(a.Name, b.Name) })
	return r
}

// pushLocked pushes an event to the client. A push fails only once the
// session has ended or the connection is being cut as a slow consumer,
// which ends the session: there is nothing more to do.
func (s *session) pushLocked(event string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.ch.log.Error("inbox: encode event", "event", event, "err", err)
		return
	}
	if err := s.gs.Push(event, data); err != nil && !errors.Is(err, gateway.ErrSessionEnded) && !errors.Is(err, gateway.ErrSlowConsumer) {
		s.ch.log.Error("inbox: push", "event", event, "err", err)
	}
}

func (s *session) pushUnreadLocked(ts *topicState) {
	s.pushLocked(EventUnread, unreadEvent{Unread: s.total, Topic: ts.name, TopicUnread: ts.unread()})
}

// pushResetLocked pushes the reset event due for ts.
func (s *session) pushResetLocked(ts *topicState, epoch uint64) {
	at := *ts.resetAt
	ts.resetAt = nil
	if at.Epoch == 0 {
		at.Epoch = epoch
	}
	s.pushLocked(EventReset, resetEvent{Topic: ts.name, Epoch: strconv.FormatUint(at.Epoch, 10), Seq: at.Seq})
	s.ch.stats.resets.Add(1)
}

// raiseHeadLocked moves ts's head up to seq; an unread event says so
// once the session has joined.
func (s *session) raiseHeadLocked(ts *topicState, seq uint64) {
	if seq <= ts.head {
		return
	}
	before := ts.unread()
	ts.head = seq
	s.total += ts.unread() - before
	if s.joined && ts.unread() != before {
		s.pushUnreadLocked(ts)
	}
}

// raiseReadLocked moves ts's cursor up to seq. It pushes a read event if
// announce is set, and an unread event, when the cursor moved.
func (s *session) raiseReadLocked(ts *topicState, seq uint64, announce bool) {
	if seq <= ts.read {
		return
	}
	before := ts.unread()
	ts.read = seq
	if ts.head < seq {
		ts.head = seq // the database's head is ahead of the deliveries
	}
	s.total -= before - ts.unread()
	if announce {
		s.pushLocked(EventRead, readEvent{Topic: ts.name, ReadSeq: ts.read})
	}
	s.pushUnreadLocked(ts)
}

// applyStatesLocked merges the database's states of the session's topics.
func (s *session) applyStatesLocked(states []notify.TopicState, announce bool) {
	for _, st := range states {
		ts := s.topics[st.Name]
		if ts == nil {
			continue
		}
		s.raiseHeadLocked(ts, st.LastSeq)
		s.raiseReadLocked(ts, st.ReadSeq, announce)
	}
}

// onControl queues a control event of the user's topic for the worker.
func (s *session) onControl(m pubsub.Message) {
	ev, err := notify.ParseControlEvent(m.Data)
	if err != nil {
		s.ch.log.Warn("inbox: dropping malformed control event", "user", s.user, "seq", m.Seq, "err", err)
		return
	}
	s.ch.stats.control.Add(1)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= maxControlQueue {
		s.mu.Unlock()
		s.gs.End(errControlBacklog)
		return
	}
	s.queue = append(s.queue, ev)
	s.kickLocked()
	s.mu.Unlock()
}

// kickLocked starts the worker if there are control events to apply.
// Events that arrive during the join wait for the join reply.
func (s *session) kickLocked() {
	if !s.joined || s.ended || s.working || len(s.queue) == 0 {
		return
	}
	s.working = true
	// The session's cleanup has not run (s.ended is false), so the
	// channel's WaitGroup is not at zero.
	s.ch.wg.Add(1)
	go s.work()
}

// work applies the queued control events in order, then exits.
func (s *session) work() {
	defer s.ch.wg.Done()
	for {
		s.mu.Lock()
		if s.ended || len(s.queue) == 0 {
			s.working = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		ev := s.queue[0]
		s.queue[0] = notify.ControlEvent{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.apply(ev)
	}
}

// apply applies one control event.
func (s *session) apply(ev notify.ControlEvent) {
	switch ev.Type {
	case notify.EventRead:
		s.mu.Lock()
		if ts := s.topics[ev.Topic]; ts != nil && !s.ended {
			s.raiseReadLocked(ts, ev.ReadSeq, true)
		}
		s.mu.Unlock()
	case notify.EventReadAll:
		// The event carries no positions: the database has them.
		ctx, cancel := context.WithTimeout(s.gs.Context(), s.ch.opts.DBTimeout)
		states, err := s.ch.svc.Subscriptions(ctx, s.user)
		cancel()
		if err != nil {
			s.fail("read the state after a mark-all", err)
			return
		}
		s.mu.Lock()
		if !s.ended {
			s.applyStatesLocked(states, true)
		}
		s.mu.Unlock()
	case notify.EventSubscribed:
		s.subscribed(ev.Topic, ev.ReadSeq)
	case notify.EventUnsubscribed:
		s.mu.Lock()
		ts := s.topics[ev.Topic]
		if ts == nil || s.ended {
			s.mu.Unlock()
			return
		}
		delete(s.topics, ts.name)
		s.total -= ts.unread()
		s.pushLocked(EventUnsubscribed, map[string]string{"topic": ts.name})
		s.pushLocked(EventUnread, unreadEvent{Unread: s.total, Topic: ts.name})
		s.mu.Unlock()
		if ts.sub != nil {
			_ = ts.sub.Unsubscribe()
		}
	}
}

// subscribed follows a topic the user just subscribed to. A new
// subscription's cursor is the topic's head when it committed (readSeq):
// the session follows the topic from there, so that the notifications
// published since reach the client too. The client is told with a
// subscribed event, then notifications follow.
func (s *session) subscribed(name string, readSeq uint64) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	if ts := s.topics[name]; ts != nil {
		s.raiseReadLocked(ts, readSeq, true)
		s.mu.Unlock()
		return
	}
	if len(s.topics) >= s.ch.opts.MaxTopics {
		s.mu.Unlock()
		s.gs.End(&gateway.ReasonError{Reason: ReasonTooManyTopics})
		return
	}
	ts := &topicState{name: name, head: readSeq, read: readSeq}
	s.topics[name] = ts
	s.pushLocked(EventSubscribed, entryOf(ts))
	s.mu.Unlock()

	ring := notify.RingTopic(name)
	ctx, cancel := context.WithTimeout(s.gs.Context(), s.ch.opts.DBTimeout)
	deliver := func(m pubsub.Message) { s.deliver(ts, m) }
	sub, err := s.subscribe(ctx, ring, deliver, pubsub.Since(0, readSeq))
	if errors.Is(err, pubsub.ErrHistoryGone) {
		sub, err = s.subscribe(ctx, ring, deliver)
	}
	cancel()
	if err != nil {
		s.fail("subscribe to "+ring, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.topics[name] != ts {
		_ = sub.Unsubscribe()
		return
	}
	ts.sub = sub
	start := sub.Start()
	if ts.epoch == 0 {
		ts.epoch = start.Epoch
	}
	s.raiseHeadLocked(ts, start.Seq)
}

// fail ends the session with phx_error after a failure that leaves its
// state uncertain: the client rejoins and the join reads the database.
func (s *session) fail(what string, err error) {
	if s.gs.Context().Err() != nil {
		return
	}
	s.ch.log.Warn("inbox: ending session", "user", s.user, "while", what, "err", err)
	s.gs.End(fmt.Errorf("inbox: %s: %w", what, err))
}

// handleIn handles the client's events: read {"topic","seq"} and
// read_all {}.
func (s *session) handleIn(ctx context.Context, event string, payload json.RawMessage) (json.RawMessage, error) {
	switch event {
	case EventRead:
		var p struct {
			Topic string          `json:"topic"`
			Seq   json.RawMessage `json:"seq"`
		}
		if err := json.Unmarshal(payload, &p); err != nil || p.Topic == "" {
			return nil, gateway.Reason(ReasonInvalidPayload + `: read takes {"topic":T,"seq":N}`)
		}
		seq, ok := jsonUint(p.Seq, false)
		if !ok {
			return nil, gateway.Reason(ReasonInvalidPayload + `: seq must be an unsigned integer`)
		}
		s.ch.stats.reads.Add(1)
		st, err := s.ch.svc.MarkRead(ctx, s.user, p.Topic, seq)
		if err != nil {
			return nil, reasonOf(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		r := readReply{Unread: s.total, Topic: st.Name, TopicUnread: st.Unread, LastSeq: st.LastSeq, ReadSeq: st.ReadSeq}
		if ts := s.topics[st.Name]; ts != nil && !s.ended {
			s.raiseHeadLocked(ts, st.LastSeq)
			s.raiseReadLocked(ts, st.ReadSeq, false)
			r = readReply{Unread: s.total, Topic: ts.name, TopicUnread: ts.unread(), LastSeq: ts.head, ReadSeq: ts.read}
		}
		return json.Marshal(r)
	case EventReadAll:
		s.ch.stats.reads.Add(1)
		if err := s.ch.svc.MarkAllRead(ctx, s.user); err != nil {
			return nil, reasonOf(err)
		}
		states, err := s.ch.svc.Subscriptions(ctx, s.user)
		if err != nil {
			return nil, reasonOf(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.applyStatesLocked(states, false)
		return json.Marshal(s.inboxLocked())
	}
	return nil, gateway.Reason(ReasonUnknownEvent)
}

// close releases the session once its join ended.
func (s *session) close() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	subs := make([]*pubsub.Subscription, 0, len(s.topics)+1)
	if s.control != nil {
		subs = append(subs, s.control)
	}
	for _, ts := range s.topics {
		if ts.sub != nil {
			subs = append(subs, ts.sub)
		}
	}
	s.topics, s.queue, s.control = nil, nil, nil
	counted := s.counted
	s.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	if counted {
		s.ch.stats.sessions.Add(-1)
		s.ch.presence.remove(s.user)
	}
}
