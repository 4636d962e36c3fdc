package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// Presence churn: how many joins (each with its leave) one gateway
// sustains on a topic that has presenceMembers members. The members are
// tracked on the gateway's node (as its clients' joins would be); the
// topic's owner is another node. presenceObservers WebSocket clients
// stay joined and receive every presence_diff; presenceChurners clients
// join with a presence key, read their reply and presence_state (the
// whole set, as Phoenix sends it), leave, and start over.
const (
	presenceObservers = 100
	presenceChurners  = 8
	presenceTopic     = "room:bench"
)

// BenchmarkPresenceChurn reports joins/s (a join and its leave per
// iteration), the latency of a join and its leave until the phx_close
// (p50, p99), and the presence_diff frames delivered per second, with
// 10,000 members on the topic and, for comparison, 100.
func BenchmarkPresenceChurn(b *testing.B) {
	for _, members := range []int{10_000, 100} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchPresenceChurn(b, members) })
	}
}

func benchPresenceChurn(b *testing.B, presenceMembers int) {
	rules := []pubsub.PresenceRule{{Pattern: "room:*", MaxEntries: presenceMembers + presenceObservers + presenceChurners + 1, MaxMetasPerKey: presenceChurners}}
	nodes := startCluster(b, 2, func(i int, c *pubsub.Config) {
		c.Presence = rules
		if i == 1 {
			c.Roles = []string{pubsub.RoleGateway}
		}
	})
	gw := nodes[1]
	subscribeAll(b, presenceMembers, func(ctx context.Context, i int) error {
		_, err := gw.Track(ctx, presenceTopic, "member-"+strconv.Itoa(i), []byte(`{"status":"online"}`))
		return err
	})
	h := gateway.NewHandler(broker.New(gw), &gateway.Options{JoinRate: -1, UserJoinRate: -1, OutboundQueueBytes: 64 << 20})
	mux := http.NewServeMux()
	mux.Handle(wsPath, h)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	b.Cleanup(func() { _ = h.Close() })
	url := "ws://" + srv.Listener.Addr().String() + wsPath + "?vsn=2.0.0"

	var diffs, markers atomic.Int64
	var readers sync.WaitGroup
	b.Cleanup(readers.Wait)
	for i := range presenceObservers {
		ws := dialBench(b, url)
		joinBench(b, ws, "1", fmt.Sprintf(`{"presence":{"key":"observer-%d"}}`, i))
		readers.Go(func() {
			for {
				_, data, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				if bytes.Contains(data, []byte(`"presence_diff"`)) {
					diffs.Add(1)
					if bytes.Contains(data, []byte(`"bench-marker"`)) {
						markers.Add(1)
					}
				}
			}
		})
	}
	churners := make([]*cws.Conn, presenceChurners)
	for i := range churners {
		churners[i] = dialBench(b, url)
	}
	var hist Histogram
	var next atomic.Int64
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	diffs.Store(0)
	var wg sync.WaitGroup
	for c, ws := range churners {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				ref := strconv.FormatInt(n, 10)
				t0 := time.Now()
				if err := churn(ws, ref, fmt.Sprintf(`{"presence":{"key":"churner-%d"}}`, c)); err != nil {
					failed.Store(err)
					return
				}
				hist.Record(int64(time.Since(t0)))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	// The churners do not wait for the observers: a last join, which
	// every observer receives after every earlier change, drains them.
	// (A leave and the next join of a churner often share a diff: the
	// node reports the changes made while a report is in flight together.)
	if _, err := gw.Track(context.Background(), presenceTopic, "bench-marker", nil); err != nil {
		b.Fatal(err)
	}
	waitFor(b, setupTimeout, "the observers to receive every diff", func() bool { return markers.Load() >= presenceObservers })
	elapsed = max(elapsed, time.Since(start))
	if st := h.Stats(); st.SlowConsumers != 0 {
		b.Fatalf("%d observers were slow consumers", st.SlowConsumers)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "joins/s")
	b.ReportMetric(float64(diffs.Load())/elapsed.Seconds(), "diffs/s")
	b.ReportMetric(hist.Quantile(0.5)/1e6, "p50-ms")
	b.ReportMetric(hist.Quantile(0.99)/1e6, "p99-ms")
	for _, ws := range churners {
		_ = ws.Close(cws.StatusNormalClosure, "")
	}
}

func dialBench(b *testing.B, url string) *cws.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	ws, resp, err := cws.Dial(ctx, url, &cws.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	ws.SetReadLimit(-1)
	b.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// joinBench joins presenceTopic and waits for the presence_state.
func joinBench(b *testing.B, ws *cws.Conn, ref, payload string) {
	b.Helper()
	if err := churnJoin(ws, ref, payload); err != nil {
		b.Fatal(err)
	}
}

func churnJoin(ws *cws.Conn, ref, payload string) error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	msg := `["` + ref + `","` + ref + `","` + presenceTopic + `","phx_join",` + payload + `]`
	if err := ws.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
		return err
	}
	return readUntil(ctx, ws, `["`+ref+`",null,"`+presenceTopic+`","presence_state"`)
}

// churn joins with a presence key, waits for the set, leaves, and waits
// for the phx_close.
func churn(ws *cws.Conn, ref, payload string) error {
	if err := churnJoin(ws, ref, payload); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	leave := `["` + ref + `","l` + ref + `","` + presenceTopic + `","phx_leave",{}]`
	if err := ws.Write(ctx, cws.MessageText, []byte(leave)); err != nil {
		return err
	}
	return readUntil(ctx, ws, `["`+ref+`","`+ref+`","`+presenceTopic+`","phx_close"`)
}

// readUntil reads messages until one starts with prefix.
func readUntil(ctx context.Context, ws *cws.Conn, prefix string) error {
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", prefix, err)
		}
		if bytes.HasPrefix(data, []byte(prefix)) {
			return nil
		}
		if bytes.Contains(data, []byte(`"status":"error"`)) {
			return fmt.Errorf("refused: %s", data)
		}
	}
}
