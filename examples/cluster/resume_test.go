package cluster

import (
	"fmt"
	"sync"
	"testing"

	cws "github.com/coder/websocket"
)

const resumeTopic = "topics:resume"

// mustPublish publishes {"n": n} to resumeTopic through the gateway at addr
// and returns the position the owner gave it.
func mustPublish(t *testing.T, addr string, n int) published {
	t.Helper()
	status, p, err := publishN(addr, resumeTopic, "owner", n, testTimeout)
	if err != nil {
		t.Fatalf("publish n=%d: %d %v", n, status, err)
	}
	return p
}

// expectN reads the next broadcast and requires it to be n, with join_ref
// jr, at the position it was published with.
func (c *wsClient) expectN(jr string, n int, at published) {
	c.t.Helper()
	d := c.readDelivery(resumeTopic)
	if d.joinRef != jr || d.n != n || d.seq != at.Seq || d.epoch != at.Epoch {
		c.t.Fatalf("%s received %+v; want join_ref %s, n=%d, seq %d, epoch %d", c.name, d, jr, n, at.Seq, at.Epoch)
	}
}

// resumeJoin joins resumeTopic with join_ref and ref jr, resuming after seq
// in epoch.
func (c *wsClient) resumeJoin(jr string, seq, epoch uint64) {
	c.t.Helper()
	c.send(fmt.Sprintf(`["%s","%s","%s","phx_join",{"since":%d,"epoch":"%d"}]`, jr, jr, resumeTopic, seq, epoch))
}

// TestReconnectSince closes a client's socket while publishes go on, and
// checks that rejoining with {"since": seq, "epoch": "e"} delivers exactly
// the messages missed, then live ones, without gap or duplicate: first with
// publishes paused while it rejoins, then with publishes running.
func TestReconnectSince(t *testing.T) {
	c := startCluster(t, 2, 2)
	g1, g2 := c.gateways[0].addr("listen"), c.gateways[1].addr("listen")

	// A client on gateway 2 receives 1..5 with their positions.
	first := dial(t, "C", g2)
	first.joinMeta(resumeTopic)
	pos := make(map[int]published)
	for n := 1; n <= 5; n++ {
		pos[n] = mustPublish(t, g1, n)
		first.expectN("1", n, pos[n])
	}
	last := pos[5]
	if err := first.ws.Close(cws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("closing the first socket: %v", err)
	}

	// While it is away, 6..12 are published.
	const missedTo = 12
	for n := 6; n <= missedTo; n++ {
		pos[n] = mustPublish(t, g1, n)
	}

	// It comes back and resumes after 5: the reply counts the 7 missed,
	// which come next, then live ones.
	second := dial(t, "C again", g2)
	second.resumeJoin("2", last.Seq, last.Epoch)
	second.expect(fmt.Sprintf(`["2","2","%s","phx_reply",{"status":"ok","response":{"recovered":%d,"epoch":"%d","seq":%d}}]`,
		resumeTopic, missedTo-5, last.Epoch, last.Seq))
	for n := 6; n <= missedTo; n++ {
		second.expectN("2", n, pos[n])
	}
	for n := missedTo + 1; n <= missedTo+3; n++ {
		pos[n] = mustPublish(t, g1, n)
		second.expectN("2", n, pos[n])
	}
	last = pos[missedTo+3]
	if err := second.ws.Close(cws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("closing the second socket: %v", err)
	}

	// Again, but publishes keep running while the client rejoins, this time
	// on the other gateway: the recovered ones and the live ones join up.
	const (
		from  = missedTo + 4
		to    = from + 59
		early = 5 // published before the client rejoins
	)
	var (
		mu   sync.Mutex
		errs []error
	)
	published5 := make(chan struct{})
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	t.Cleanup(func() { // before the processes stop, should the test end early
		close(stopPub)
		<-pubDone
	})
	go func() {
		defer close(pubDone)
		for n := from; n <= to; n++ {
			select {
			case <-stopPub:
				return
			default:
			}
			status, p, err := publishN(g1, resumeTopic, "owner", n, testTimeout)
			mu.Lock()
			if err != nil {
				errs = append(errs, fmt.Errorf("publish n=%d: %d %w", n, status, err))
			} else {
				pos[n] = p
			}
			mu.Unlock()
			if n == from+early-1 {
				close(published5)
			}
		}
	}()
	select {
	case <-published5:
	case <-pubDone:
	}
	third := dial(t, "C on gateway 1", g1)
	third.resumeJoin("3", last.Seq, last.Epoch)
	reply := third.read()
	var recovered int
	if _, err := fmt.Sscanf(reply, `["3","3","`+resumeTopic+`","phx_reply",{"status":"ok","response":{"recovered":%d,`, &recovered); err != nil {
		t.Fatalf("resume reply %s: %v", reply, err)
	}
	if want := fmt.Sprintf(`["3","3","%s","phx_reply",{"status":"ok","response":{"recovered":%d,"epoch":"%d","seq":%d}}]`,
		resumeTopic, recovered, last.Epoch, last.Seq); reply != want {
		t.Fatalf("resume reply %s; want %s", reply, want)
	}
	if recovered < early || recovered > to-from+1 {
		t.Fatalf("recovered %d messages; %d were published before the rejoin, %d in all", recovered, early, to-from+1)
	}
	got := make([]delivery, 0, to-from+1)
	for n := from; n <= to; n++ {
		got = append(got, third.readDelivery(resumeTopic))
	}
	<-pubDone
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("publishing while the client rejoined: %v", errs)
	}
	for i, d := range got {
		n := from + i
		if d.joinRef != "3" || d.n != n || d.seq != pos[n].Seq || d.epoch != pos[n].Epoch {
			t.Fatalf("message %d after the rejoin is %+v; want n=%d at seq %d epoch %d", i+1, d, n, pos[n].Seq, pos[n].Epoch)
		}
	}
	t.Logf("rejoined while publishes ran: %d recovered from history, %d live", recovered, to-from+1-recovered)

	// Nothing more: no duplicate is waiting behind the last one.
	end := mustPublish(t, g2, to+1)
	third.expectN("3", to+1, end)
}
