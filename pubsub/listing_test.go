package pubsub

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// listAll reads every page of a listing from n, checking each page's
// bounds, and returns the topics in the order the pages gave them.
func listAll(t *testing.T, n *Node, q TopicQuery) []TopicSummary {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	var all []TopicSummary
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("listing never ends")
		}
		p, err := n.Topics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Partial {
			t.Fatalf("page partial, missing %v", p.Missing)
		}
		limit := q.Limit
		if limit == 0 {
			limit = DefaultTopicLimit
		}
		if len(p.Topics) > limit {
			t.Fatalf("page of %d topics for limit %d", len(p.Topics), limit)
		}
		all = append(all, p.Topics...)
		if p.Next == "" {
			return all
		}
		if len(p.Topics) == 0 {
			t.Fatal("empty page with a next cursor")
		}
		q.Cursor = p.Next
	}
}

func names(ts []TopicSummary) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Topic
	}
	return out
}

func TestTopicsListsTheCluster(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 20*time.Second)
	var want []string
	for i := range 40 {
		topic := fmt.Sprintf("list-%02d", i)
		want = append(want, topic)
		for range i%3 + 1 {
			if _, err := c.nodes[i%3].Publish(ctx, topic, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 5 {
		if _, err := c.nodes[0].Publish(ctx, fmt.Sprintf("other-%d", i), []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.nodes[1].Subscribe(ctx, "list-07")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	owners := map[string]int{}
	for _, limit := range []int{0, 1, 7, MaxTopicLimit} {
		got := listAll(t, c.nodes[limit%3], TopicQuery{Prefix: "list-", Limit: limit})
		if !slices.Equal(names(got), want) {
			t.Fatalf("limit %d: listed %v\nwant %v", limit, names(got), want)
		}
		for i, ts := range got {
			o, err := c.nodes[0].Owner(ts.Topic)
			if err != nil {
				t.Fatal(err)
			}
			wantNodes := 0
			if ts.Topic == "list-07" {
				wantNodes = 1
			}
			if ts.Owner != o.Name || ts.Seq != uint64(i%3+1) || ts.Epoch == 0 || ts.Retained != i%3+1 ||
				ts.SubscriberNodes != wantNodes || ts.Durable || ts.Claiming {
				t.Fatalf("limit %d: %+v (owner in the view %s)", limit, ts, o.Name)
			}
			owners[ts.Owner]++
		}
	}
	if len(owners) != 3 {
		t.Fatalf("topics owned by %v: want every node to answer for its share", owners)
	}

	all := listAll(t, c.nodes[2], TopicQuery{Limit: 10})
	if len(all) != 45 || !slices.IsSortedFunc(all, func(a, b TopicSummary) int { return strings.Compare(a.Topic, b.Topic) }) {
		t.Fatalf("whole listing: %v", names(all))
	}
	if got := listAll(t, c.nodes[0], TopicQuery{Prefix: "other-"}); len(got) != 5 {
		t.Fatalf("prefix other-: %v", names(got))
	}
	if got := listAll(t, c.nodes[0], TopicQuery{Prefix: "nothing-"}); len(got) != 0 {
		t.Fatalf("prefix nothing-: %v", names(got))
	}
	// A cursor past every name ends the listing.
	p, err := c.nodes[1].Topics(ctx, TopicQuery{Cursor: EncodeTopicCursor("zzz")})
	if err != nil || len(p.Topics) != 0 || p.Next != "" {
		t.Fatalf("after the last name: %+v, %v", p, err)
	}
}

func TestTopicsPartialWhenAMemberIsDown(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 20*time.Second)
	down := c.nodes[2]
	var kept []string
	for i := range 30 {
		topic := fmt.Sprintf("part-%02d", i)
		if _, err := c.nodes[0].Publish(ctx, topic, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if o, _ := c.nodes[0].Owner(topic); o.Name != down.Name() {
			kept = append(kept, topic)
		}
	}
	if len(kept) == 30 || len(kept) == 0 {
		t.Fatalf("%d of 30 topics on the live nodes: want some on each side", len(kept))
	}
	// The member stays in every view (its gossip runs) but its peer links
	// are gone: it cannot answer.
	_ = down.tr.Close()
	start := time.Now()
	p, err := c.nodes[0].Topics(ctx, TopicQuery{Prefix: "part-", Limit: MaxTopicLimit, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Partial || !slices.Equal(p.Missing, []string{down.Name()}) {
		t.Fatalf("partial %v, missing %v: want %s missing", p.Partial, p.Missing, down.Name())
	}
	if !slices.Equal(names(p.Topics), kept) {
		t.Fatalf("listed %v\nwant the live members' %v", names(p.Topics), kept)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("listing took %v with a per-member timeout of 500ms", d)
	}
}

func TestTopicsRefusesBadQueries(t *testing.T) {
	n, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	for _, q := range []TopicQuery{
		{Limit: -1},
		{Limit: MaxTopicLimit + 1},
		{Prefix: strings.Repeat("p", MaxTopicLen+1)},
		{Cursor: "not base64!"},
		{Cursor: EncodeTopicCursor(strings.Repeat("c", MaxTopicLen+1))},
		{Cursor: EncodeTopicCursor("\xff")},
		{Timeout: -time.Second},
	} {
		if _, err := n.Topics(ctx, q); !errors.Is(err, ErrInvalidQuery) {
			t.Fatalf("%+v: err = %v, want ErrInvalidQuery", q, err)
		}
	}
	// A standalone node answers for itself, with no frame sent.
	if _, err := n.Publish(ctx, "solo-topic", []byte("x")); err != nil {
		t.Fatal(err)
	}
	p, err := n.Topics(ctx, TopicQuery{})
	if err != nil || len(p.Topics) != 1 || p.Topics[0].Owner != "solo" || p.Partial {
		t.Fatalf("standalone listing: %+v, %v", p, err)
	}
	_ = n.Close()
	if _, err := n.Topics(ctx, TopicQuery{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed node: %v", err)
	}
}

func TestMergeTopicsStopsAtATruncatedMember(t *testing.T) {
	entries := func(names ...string) []wire.TopicEntry {
		out := make([]wire.TopicEntry, len(names))
		for i, n := range names {
			out[i] = wire.TopicEntry{Name: n, Seq: 1}
		}
		return out
	}
	// b holds more after "c": its next topics may sort before "d", so the
	// page ends at "c".
	p := mergeTopics([]memberTopics{
		{member: "a", topics: entries("a", "d", "f")},
		{member: "b", topics: entries("b", "c"), more: true},
		{member: "x", err: ErrUnavailable},
	}, 10)
	if got := names(p.Topics); !slices.Equal(got, []string{"a", "b", "c"}) || p.Next != EncodeTopicCursor("c") {
		t.Fatalf("page %v next %q", got, p.Next)
	}
	if !p.Partial || !slices.Equal(p.Missing, []string{"x"}) {
		t.Fatalf("partial %v missing %v", p.Partial, p.Missing)
	}
	// A topic two members list (it is changing owner) is shown once, by
	// the one that serves it; the limit ends the page.
	claiming := entries("m")
	claiming[0].Claiming = true
	claiming[0].Epoch = 9
	p = mergeTopics([]memberTopics{
		{member: "old", topics: entries("l", "m")},
		{member: "new", topics: append(claiming, entries("n")...)},
	}, 2)
	if got := names(p.Topics); !slices.Equal(got, []string{"l", "m"}) || p.Topics[1].Owner != "old" || p.Next != EncodeTopicCursor("m") {
		t.Fatalf("page %+v", p)
	}
	p = mergeTopics(nil, 5)
	if p.Topics == nil || len(p.Topics) != 0 || p.Next != "" || p.Partial {
		t.Fatalf("empty page %+v", p)
	}
}

func TestOwnedTopicsReplyBudget(t *testing.T) {
	n, err := New(testConfig("budget"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	long := strings.Repeat("t", MaxTopicLen-8)
	for i := range 20 {
		if _, err := n.Publish(ctx, fmt.Sprintf("%s-%03d", long, i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	budget := 5 * wire.TopicEntrySize(long+"-000")
	got, more := n.ownedTopics("", "", MaxTopicLimit, budget)
	if len(got) != 5 || !more {
		t.Fatalf("%d topics (more %v) in a budget of 5", len(got), more)
	}
	reply := wire.EncodeFrame(&wire.Topics{ReqID: 1, More: true, Topics: got})
	if len(reply) > budget+64 {
		t.Fatalf("reply of %d bytes for a budget of %d", len(reply), budget)
	}
	// One topic always fits, so the listing moves on.
	if got, more := n.ownedTopics("", "", MaxTopicLimit, 1); len(got) != 1 || !more {
		t.Fatalf("budget 1: %d topics, more %v", len(got), more)
	}
}
