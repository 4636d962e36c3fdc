package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds of the large-history test: 300 messages of 5 KB per topic, 1.5 MB
// of history, above the 1 MiB + 64 KiB frame of the default --max-payload.
const (
	largeMessages = 300
	largePad      = 5000
	largeTopics   = 4
)

// publishPadded posts {"n": n, "pad": "..."} (about largePad bytes) to
// topic through the gateway at addr and returns the position it was given.
func publishPadded(t *testing.T, addr, topic string, n int) published {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	body := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", largePad))
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/publish?topic="+topic+"&ack=owner", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("publish %d to %s: %v", n, topic, err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var p published
	if err != nil || resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil || p.Seq == 0 {
		t.Fatalf("publish %d to %s: %d %s %v", n, topic, resp.StatusCode, b, err)
	}
	return p
}

// TestLargeHistoryHandoff fills topics with 1.5 MB of history each on a
// lone topic server, has a second one join (the topics it takes over are
// claimed in parts), then stops the first gracefully (its topics are handed
// off in parts, and it exits 0). Every topic keeps its epoch, its sequence
// continues, and a client resuming from the start receives all of it.
func TestLargeHistoryHandoff(t *testing.T) {
	c := startCluster(t, 1, 1, "--history-size", "400")
	gw := c.gateways[0].addr("listen")
	topics := make([]string, largeTopics)
	last := make(map[string]published)
	for i := range topics {
		topics[i] = fmt.Sprintf("topics:large-%d", i)
		for n := 1; n <= largeMessages; n++ {
			p := publishPadded(t, gw, topics[i], n)
			if p.Seq != uint64(n) {
				t.Fatalf("%s: message %d got seq %d", topics[i], n, p.Seq)
			}
			last[topics[i]] = p
		}
	}
	// next publishes one more message to every topic and checks that its
	// sequence continues in the same epoch.
	next := func(when string) {
		t.Helper()
		for _, topic := range topics {
			prev := last[topic]
			p := publishPadded(t, gw, topic, int(prev.Seq)+1)
			if p.Epoch != prev.Epoch || p.Seq != prev.Seq+1 {
				t.Fatalf("%s %s: epoch %d seq %d, want epoch %d seq %d", topic, when, p.Epoch, p.Seq, prev.Epoch, prev.Seq+1)
			}
			last[topic] = p
		}
	}

	first := c.topics[0]
	joined := start(t, "topic-2", topicBinary, nil, "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--shutdown-timeout", shutdownTimeout.String(), "--failure-detection", "fast", "--history-size", "400",
		"--name", "topic-2", "--http", "127.0.0.1:0", "--join", first.addr("gossip"))
	moved := 0
	waitFor(t, testTimeout, "every view to list topic-2", func() bool {
		var info clusterInfo
		getJSON(t, "http://"+gw+"/api/cluster", &info)
		return len(info.Members) == 3
	})
	for _, topic := range topics {
		var st topicState
		getJSON(t, "http://"+gw+"/api/topics/"+topic, &st)
		if st.Owner == joined.nodeName() {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("no topic moved to %s: pick other topic names", joined.nodeName())
	}
	next("after topic-2 joined")

	first.signal(syscall.SIGTERM)
	if code, _ := first.waitExit(shutdownTimeout + 5*time.Second); code != 0 {
		t.Fatalf("topic-1 exited %d after SIGTERM:\n%s", code, first.logs())
	}
	waitFor(t, testTimeout, "the gateway to see topic-1 leave", func() bool {
		var info clusterInfo
		getJSON(t, "http://"+gw+"/api/cluster", &info)
		return len(info.Members) == 2
	})
	next("after topic-1 left")

	for i, topic := range topics {
		cl := dial(t, fmt.Sprintf("client-%d", i), gw)
		end := last[topic]
		cl.send(fmt.Sprintf(`["1","1","%s","phx_join",{"since":0,"epoch":"%d","meta":true}]`, topic, end.Epoch))
		cl.expect(fmt.Sprintf(`["1","1","%s","phx_reply",{"status":"ok","response":{"recovered":%d,"epoch":"%d","seq":0}}]`,
			topic, end.Seq, end.Epoch))
		for n := 1; n <= int(end.Seq); n++ {
			d := cl.readDelivery(topic)
			if d.n != n || d.seq != uint64(n) || d.epoch != end.Epoch {
				t.Fatalf("%s: recovered %+v, want message %d in epoch %d", topic, d, n, end.Epoch)
			}
		}
	}
	t.Logf("%d of %d topics moved to topic-2 when it joined; all %d are there since topic-1 stopped", moved, largeTopics, largeTopics)
}
