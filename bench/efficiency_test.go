package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// efficiencyTopics is the number of topics each configuration publishes
// to: enough that their owners land on publisher and non-publisher nodes,
// subscriber and non-subscriber nodes alike.
const (
	efficiencyTopics    = 12
	efficiencyPublishes = 5 // per topic
)

// spread is how many nodes have subscribers for a topic.
type spread struct {
	name  string
	nodes func(size int) int
}

var spreads = []spread{
	{"1 node", func(int) int { return 1 }},
	{"half", func(size int) int { return (size + 1) / 2 }},
	{"all", func(size int) int { return size }},
}

// frameRow is one line of the frames-per-publish table.
type frameRow struct {
	size, subNodes, r int
	spread            string
	measured          float64 // Publish+Deliver+Replicate frames per publish
	deliver           float64 // of which Deliver
}

// TestFramesPerPublish measures the inter-node frames one publish costs
// (Publish to the owner, Deliver to each other subscriber node, Replicate
// to each replica that is not a subscriber node: a replica with
// subscribers gets its copy in the Deliver; from the link counters of
// every node) for clusters of
// 3, 5 and 7 nodes, subscribers on 1, half or all nodes, and replication
// factors 1 and 2. It checks that the count is exactly what the design
// says, topic by topic, and logs the table beside the N-1 frames a
// broadcast design sends (go test -v -run TestFramesPerPublish ./bench).
func TestFramesPerPublish(t *testing.T) {
	sizes := []int{3, 5, 7}
	if testing.Short() {
		sizes = []int{3}
	}
	var rows []frameRow
	for _, size := range sizes {
		for _, r := range []int{1, 2} {
			t.Run(fmt.Sprintf("nodes=%d/R=%d", size, r), func(t *testing.T) {
				rows = append(rows, measureFrames(t, size, r)...)
			})
		}
	}
	t.Log("\n" + frameTable(rows))
}

func measureFrames(t *testing.T, size, r int) []frameRow {
	nodes := startCluster(t, size, func(_ int, c *pubsub.Config) { c.ReplicationFactor = r })
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pub := nodes[0]
	payload := newPayload()
	var rows []frameRow
	for si, sp := range spreads {
		k := sp.nodes(size)
		// Subscriber nodes: n1, n2, ... and the publisher's node last, so
		// that "1 node" is a node other than the publisher's.
		subNodes := make([]*pubsub.Node, 0, k)
		for i := 1; len(subNodes) < k; i = (i + 1) % size {
			subNodes = append(subNodes, nodes[i])
		}
		var expected, expectedDeliver uint64
		topics := make([]string, efficiencyTopics)
		for ti := range topics {
			topics[ti] = "bench:frames:" + strconv.Itoa(si) + ":" + strconv.Itoa(ti)
			owner, err := pub.Owner(topics[ti])
			if err != nil {
				t.Fatal(err)
			}
			replicas, err := pub.Replicas(topics[ti])
			if err != nil {
				t.Fatal(err)
			}
			var perPublish uint64
			if owner.Name != pub.Name() {
				perPublish++ // Publish to the owner
			}
			for _, sn := range subNodes {
				if sn.Name() != owner.Name {
					perPublish++ // Deliver to a subscriber node
					expectedDeliver += efficiencyPublishes
				}
			}
			for _, rm := range replicas {
				if !slices.ContainsFunc(subNodes, func(sn *pubsub.Node) bool { return sn.Name() == rm.Name }) {
					perPublish++ // Replicate to a replica without subscribers
				}
			}
			expected += perPublish * efficiencyPublishes
			for _, sn := range subNodes {
				s, err := sn.Subscribe(ctx, topics[ti])
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = s.Unsubscribe() }()
			}
		}
		before := interNodeFrames(nodes, messageFrames...)
		beforeDeliver := interNodeFrames(nodes, deliverFrames...)
		for range efficiencyPublishes {
			for _, topic := range topics {
				if _, err := pub.Publish(ctx, topic, payload); err != nil {
					t.Fatal(err)
				}
			}
		}
		got := settledFrames(t, nodes, before+expected)
		if got-before != expected {
			t.Errorf("%d nodes, R=%d, subscribers on %s: %d message frames for %d publishes, want %d",
				size, r, sp.name, got-before, efficiencyTopics*efficiencyPublishes, expected)
		}
		deliver := interNodeFrames(nodes, deliverFrames...) - beforeDeliver
		if deliver != expectedDeliver {
			t.Errorf("%d nodes, R=%d, subscribers on %s: %d Deliver frames, want %d (one per subscriber node other than the owner)",
				size, r, sp.name, deliver, expectedDeliver)
		}
		publishes := float64(efficiencyTopics * efficiencyPublishes)
		rows = append(rows, frameRow{
			size: size, subNodes: k, r: r, spread: sp.name,
			measured: float64(got-before) / publishes,
			deliver:  float64(deliver) / publishes,
		})
	}
	return rows
}

// settledFrames polls the message frame count until it reaches want and
// then stays put for a few polls, or until a deadline; it returns the
// last count.
func settledFrames(t testing.TB, nodes []*pubsub.Node, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last, stable := uint64(0), 0
	for time.Now().Before(deadline) {
		n := interNodeFrames(nodes, messageFrames...)
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		if n >= want && stable >= 10 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	return last
}

// frameTable formats rows as a Markdown table.
func frameTable(rows []frameRow) string {
	slices.SortStableFunc(rows, func(a, b frameRow) int {
		if a.size != b.size {
			return a.size - b.size
		}
		if a.subNodes != b.subNodes {
			return a.subNodes - b.subNodes
		}
		return a.r - b.r
	})
	var sb strings.Builder
	sb.WriteString("| nodes | subscriber nodes | R | ringcast frames/publish | of which Deliver | broadcast (N-1) | ringcast / broadcast |\n")
	sb.WriteString("|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		bc := float64(r.size - 1)
		fmt.Fprintf(&sb, "| %d | %s (%d) | %d | %.2f | %.2f | %.0f | %.2f |\n",
			r.size, r.spread, r.subNodes, r.r, r.measured, r.deliver, bc, r.measured/bc)
	}
	return sb.String()
}
