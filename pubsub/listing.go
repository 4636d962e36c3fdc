package pubsub

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// Bounds of a topic listing (Node.Topics).
const (
	// DefaultTopicLimit is the page size of a TopicQuery with Limit 0.
	DefaultTopicLimit = 100
	// MaxTopicLimit is the largest page a TopicQuery may ask for.
	MaxTopicLimit = 1000
)

// topicsReplyBudget bounds the encoded topics of one Topics reply, well
// inside the frame limit of any link (linkFrameLimit leaves 64 KiB beyond
// the payload limit): a member that holds more says so (More) and the
// next page asks again from where it stopped.
const topicsReplyBudget = 48 << 10

// ErrInvalidQuery is returned by Node.Topics for a limit out of range, a
// prefix longer than MaxTopicLen, or a cursor that no page returned.
var ErrInvalidQuery = errors.New("pubsub: invalid topic query")

// TopicQuery selects a page of the cluster's topics for Node.Topics. The
// zero value asks for the first DefaultTopicLimit topics of every name.
type TopicQuery struct {
	// Prefix keeps the topics whose names start with it ("" keeps all).
	Prefix string
	// Limit bounds the topics of the page: 0 means DefaultTopicLimit; a
	// negative value or one above MaxTopicLimit is refused.
	Limit int
	// Cursor continues a listing: the Next of the previous page, with the
	// same Prefix. "" starts from the first name.
	Cursor string
	// Timeout bounds the wait for each member's answer; 0 means
	// Config.RequestTimeout. A member that does not answer in time is
	// listed in TopicPage.Missing.
	Timeout time.Duration
}

// TopicSummary describes one topic as its owner holds it.
type TopicSummary struct {
	Topic string `json:"topic"`
	Owner string `json:"owner"`
	// Epoch and Seq are the topic's epoch and last sequence number (the
	// head of its order); both are zero for a topic not yet published to.
	Epoch uint64 `json:"epoch,string"` // a string: JavaScript cannot hold it exactly
	Seq   uint64 `json:"seq"`
	// SubscriberNodes counts the nodes with subscribers that the owner
	// delivers the topic to (itself included when it has subscribers).
	SubscriberNodes int `json:"subscriber_nodes"`
	// Retained counts the messages in the owner's in-memory history.
	Retained int `json:"retained"`
	// Durable says that the topic's messages are committed to the store.
	Durable bool `json:"durable"`
	// Claiming says that the owner is taking the topic over, or handing
	// it to another member: its figures may be about to change.
	Claiming bool `json:"claiming,omitempty"`
}

// TopicPage is one page of a topic listing, in name order.
type TopicPage struct {
	Topics []TopicSummary `json:"topics"`
	// Next is the cursor of the following page (TopicQuery.Cursor), "" on
	// the last page.
	Next string `json:"next,omitempty"`
	// Partial says that some members with the topics role did not answer:
	// the page lacks their topics. Missing names them.
	Partial bool     `json:"partial"`
	Missing []string `json:"missing,omitempty"`
}

// EncodeTopicCursor returns the cursor that continues a listing after the
// topic named name: the Next that a page ending with it carries.
func EncodeTopicCursor(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name))
}

// decodeTopicCursor returns the name a cursor continues after.
func decodeTopicCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || len(b) > MaxTopicLen || !utf8.Valid(b) {
		return "", fmt.Errorf("%w: cursor %.40q is not one a page returned", ErrInvalidQuery, c)
	}
	return string(b), nil
}

// memberTopics is one member's answer to a listing: its topics in name
// order, whether it holds more after them, or the error that kept it from
// answering.
type memberTopics struct {
	member string
	topics []wire.TopicEntry
	more   bool
	err    error
}

// Topics lists the topics of the whole cluster, in name order, a page at a
// time: it asks every member with the topics role for the topics it owns
// (each member answers for its share of the ring) and merges the answers.
// Pass a page's Next as the following query's Cursor to read on. It is
// meant for operators: it costs one round trip to every member. A member
// that does not answer within the query's Timeout leaves the page
// Partial, with the member named in Missing; Topics fails only for a bad
// query (ErrInvalidQuery), a closed node, or ctx.
//
// A topic is listed by the member that holds its state: one never
// published to nor subscribed is not listed, and one that changes owner
// while the pages are read may be listed twice or missed once.
func (n *Node) Topics(ctx context.Context, q TopicQuery) (TopicPage, error) {
	switch {
	case q.Limit < 0 || q.Limit > MaxTopicLimit:
		return TopicPage{}, fmt.Errorf("%w: limit %d out of range 1..%d (0 = %d)", ErrInvalidQuery, q.Limit, MaxTopicLimit, DefaultTopicLimit)
	case len(q.Prefix) > MaxTopicLen:
		return TopicPage{}, fmt.Errorf("%w: prefix longer than %d bytes", ErrInvalidQuery, MaxTopicLen)
	case q.Timeout < 0:
		return TopicPage{}, fmt.Errorf("%w: negative timeout", ErrInvalidQuery)
	}
	if q.Limit == 0 {
		q.Limit = DefaultTopicLimit
	}
	if q.Timeout == 0 {
		q.Timeout = n.cfg.RequestTimeout
	}
	after, err := decodeTopicCursor(q.Cursor)
	if err != nil {
		return TopicPage{}, err
	}
	if n.isClosed() {
		return TopicPage{}, ErrClosed
	}
	var members []string
	for _, m := range n.Members() {
		if m.HasRole(RoleTopics) {
			members = append(members, m.Name)
		}
	}
	answers := make(chan memberTopics, len(members))
	for _, m := range members {
		if m == n.name {
			topics, more := n.ownedTopics(q.Prefix, after, q.Limit, 0)
			answers <- memberTopics{member: m, topics: topics, more: more}
			continue
		}
		n.requestTopics(m, wire.TopicsRequest{Prefix: q.Prefix, After: after, Limit: uint32(q.Limit)}, q.Timeout, answers)
	}
	got := make([]memberTopics, 0, len(members))
	for range members {
		select {
		case a := <-answers:
			got = append(got, a)
		case <-ctx.Done():
			return TopicPage{}, ctx.Err()
		case <-n.done:
			return TopicPage{}, ErrClosed
		}
	}
	return mergeTopics(got, q.Limit), nil
}

// requestTopics asks member for its topics; the answer, or the error,
// goes to answers.
func (n *Node) requestTopics(member string, req wire.TopicsRequest, timeout time.Duration, answers chan<- memberTopics) {
	id := n.pending.add(member, timeout, func(_ string, msg wire.Message, err error) {
		a := memberTopics{member: member, err: err}
		if t, ok := msg.(*wire.Topics); ok {
			if a.err = codeError(t.Code, t.Err); a.err == nil {
				a.topics, a.more = t.Topics, t.More
			}
		}
		answers <- a
	})
	req.ReqID = id
	if err := n.peers.sendMsg(member, &req); err != nil {
		n.pending.cancel(id)
		answers <- memberTopics{member: member, err: err}
	}
}

// onTopicsRequest answers a member's listing with the topics this node
// owns.
func (n *Node) onTopicsRequest(from string, m *wire.TopicsRequest) {
	reply := &wire.Topics{ReqID: m.ReqID}
	if len(m.Prefix) > MaxTopicLen || len(m.After) > MaxTopicLen {
		n.stats.badFrames.Add(1)
		reply.Code, reply.Err = codeUnavailable, "pubsub: topic listing with a prefix or cursor too long"
	} else {
		limit := int(min(m.Limit, MaxTopicLimit))
		reply.Topics, reply.More = n.ownedTopics(m.Prefix, m.After, limit, topicsReplyBudget)
	}
	if err := n.peers.sendMsg(from, reply); err != nil {
		n.log.Debug("topic listing reply not sent", "peer", from, "err", err)
	}
}

// ownedTopics returns the topics this node owns (ready, or being claimed)
// whose names start with prefix and sort after after, in name order: at
// most limit of them and, when budget > 0, no more than fit in budget
// bytes. more says that further topics follow.
func (n *Node) ownedTopics(prefix, after string, limit, budget int) (out []wire.TopicEntry, more bool) {
	if limit <= 0 {
		return nil, false
	}
	var names []*ownedTopic
	for _, ot := range n.owned.all() {
		if strings.HasPrefix(ot.name, prefix) && ot.name > after {
			names = append(names, ot)
		}
	}
	slices.SortFunc(names, func(a, b *ownedTopic) int { return strings.Compare(a.name, b.name) })
	size := 0
	for _, ot := range names {
		e, ok := topicEntry(ot)
		if !ok {
			continue
		}
		size += wire.TopicEntrySize(e.Name)
		if len(out) == limit || budget > 0 && size > budget && len(out) > 0 {
			return out, true
		}
		out = append(out, e)
	}
	return out, false
}

// topicEntry describes an owned topic; ok is false for a tombstone (the
// topic moved away) or a topic gone from the table.
func topicEntry(ot *ownedTopic) (e wire.TopicEntry, ok bool) {
	ot.mu.Lock()
	defer ot.mu.Unlock()
	if ot.gone.Load() || ot.state == stateMoved {
		return e, false
	}
	return wire.TopicEntry{
		Name:     ot.name,
		Epoch:    ot.epoch,
		Seq:      ot.seq,
		Nodes:    uint32(min(len(ot.nodes), 1<<32-1)),
		Retained: uint32(min(ot.hist.n, 1<<32-1)),
		Durable:  ot.dur != nil,
		Claiming: ot.state == stateClaiming,
	}, true
}

// mergeTopics merges the members' answers into one page of at most limit
// topics. A member that holds more topics than it sent bounds the page:
// the page ends at its last topic, as its next topics may sort before
// those of other members. A topic two members list (it is changing owner)
// is shown once, by the member that serves it.
func mergeTopics(answers []memberTopics, limit int) TopicPage {
	page := TopicPage{Topics: []TopicSummary{}}
	var (
		all     []TopicSummary
		more    bool
		cut     string
		haveCut bool
	)
	for _, a := range answers {
		if a.err != nil {
			page.Partial = true
			page.Missing = append(page.Missing, a.member)
			continue
		}
		if a.more && len(a.topics) > 0 {
			more = true
			if last := a.topics[len(a.topics)-1].Name; !haveCut || last < cut {
				cut, haveCut = last, true
			}
		}
		for _, e := range a.topics {
			all = append(all, TopicSummary{
				Topic: e.Name, Owner: a.member, Epoch: e.Epoch, Seq: e.Seq,
				SubscriberNodes: int(e.Nodes), Retained: int(e.Retained),
				Durable: e.Durable, Claiming: e.Claiming,
			})
		}
	}
	slices.Sort(page.Missing)
	slices.SortFunc(all, func(a, b TopicSummary) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		// Of two listings of one topic, the served one first, then the
		// later state.
		if a.Claiming != b.Claiming {
			if !a.Claiming {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.Epoch, a.Epoch); c != 0 {
			return c
		}
		return cmp.Compare(b.Seq, a.Seq)
	})
	for _, t := range all {
		if haveCut && t.Topic > cut {
			break
		}
		if k := len(page.Topics); k > 0 && page.Topics[k-1].Topic == t.Topic {
			continue
		}
		if len(page.Topics) == limit {
			more = true
			break
		}
		page.Topics = append(page.Topics, t)
	}
	if more && len(page.Topics) > 0 {
		page.Next = EncodeTopicCursor(page.Topics[len(page.Topics)-1].Topic)
	}
	return page
}
