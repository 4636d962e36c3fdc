package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// Bounds of the failover test's publisher.
const (
	failoverTopic    = "topics:orders"
	failoverAttempts = 600              // publishes attempted at most
	failoverDuration = 30 * time.Second // and for at most this long
	killAfterAcked   = 150              // acknowledged publishes before the owner is killed
	failoverRetry    = 10 * time.Millisecond
	// failoverPublishTimeout is how long the publisher waits for one
	// answer. A publish normally takes milliseconds. One that a member
	// forwards toward the failed owner before it learns of the failure is
	// lost with that member's link, and only the caller's deadline ends it
	// (the API's own is 10 s), so the publisher gives up sooner and sends
	// its next message, as a client with a short timeout would.
	failoverPublishTimeout = time.Second
	// recoveryBound is what the test accepts from kill to the first
	// acknowledged publish; with fast failure detection it takes well under
	// two seconds.
	recoveryBound = 10 * time.Second
)

// delivery is one broadcast of an HTTP publish {"n": N} to a client that
// joined with {"meta": true}:
// [join_ref, null, topic, "message", {"n": N}, {"seq": S, "epoch": "E"}].
type delivery struct {
	joinRef string
	n       int
	seq     uint64
	epoch   uint64
}

// parseDelivery reads a broadcast of topic; anything else is an error.
func parseDelivery(frame, topic string) (delivery, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal([]byte(frame), &parts); err != nil || len(parts) != 6 {
		return delivery{}, fmt.Errorf("not a broadcast with metadata: %s", frame)
	}
	var (
		d            delivery
		ref          *string
		gotTopic, ev string
		body         struct {
			N *int `json:"n"`
		}
		meta struct {
			Seq   uint64 `json:"seq"`
			Epoch string `json:"epoch"`
		}
	)
	if json.Unmarshal(parts[0], &d.joinRef) != nil || json.Unmarshal(parts[1], &ref) != nil || ref != nil ||
		json.Unmarshal(parts[2], &gotTopic) != nil || gotTopic != topic ||
		json.Unmarshal(parts[3], &ev) != nil || ev != "message" ||
		json.Unmarshal(parts[4], &body) != nil || body.N == nil ||
		json.Unmarshal(parts[5], &meta) != nil || meta.Seq == 0 {
		return delivery{}, fmt.Errorf("not a broadcast of {\"n\": N} on %s with metadata: %s", topic, frame)
	}
	epoch, err := strconv.ParseUint(meta.Epoch, 10, 64)
	if err != nil || epoch == 0 {
		return delivery{}, fmt.Errorf("broadcast with a bad epoch %q: %s", meta.Epoch, frame)
	}
	d.n, d.seq, d.epoch = *body.N, meta.Seq, epoch
	return d, nil
}

// readDelivery reads the next message and requires it to be a broadcast of
// topic.
func (c *wsClient) readDelivery(topic string) delivery {
	c.t.Helper()
	d, err := parseDelivery(c.read(), topic)
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return d
}

// joinMeta joins topic with join_ref and ref "1", asking for sequence
// metadata.
func (c *wsClient) joinMeta(topic string) {
	c.t.Helper()
	c.send(`["1","1","` + topic + `","phx_join",{"meta":true}]`)
	c.expect(`["1","1","` + topic + `","phx_reply",{"status":"ok","response":{}}]`)
}

// published is the answer to an acknowledged POST /api/publish.
type published struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
	Epoch uint64 `json:"epoch,string"`
}

// publishN posts {"n": n} to topic through the gateway at addr with the
// acknowledgement ack, giving up after timeout. It returns the HTTP status
// (0 when no answer came) and, with 200, the position the owner gave the
// message.
func publishN(addr, topic, ack string, n int, timeout time.Duration) (int, published, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/publish?topic="+topic+"&ack="+ack,
		strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
	if err != nil {
		return 0, published{}, err
	}
	status, body := 0, ""
	resp, err := httpClient.Do(req)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		status, body, err = resp.StatusCode, string(b), rerr
	}
	if err != nil || status != 200 {
		if err == nil {
			err = fmt.Errorf("status %d: %s", status, body)
		}
		return status, published{}, err
	}
	var p published
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.Topic != topic || p.Seq == 0 || p.Epoch == 0 {
		return status, p, fmt.Errorf("bad answer %q: %v", body, err)
	}
	return status, p, nil
}

// recorder keeps what one WebSocket client receives, read by its own
// goroutine until the socket closes.
type recorder struct {
	name  string
	topic string

	mu         sync.Mutex
	deliveries []delivery
	bad        []string // frames that are not broadcasts of topic
	readErr    error    // why reading stopped, once done is closed

	done chan struct{}
}

// record connects a client to the gateway at addr, joins topic with
// metadata and records what it receives until the test ends.
func record(t *testing.T, name, addr, topic string) *recorder {
	t.Helper()
	c := dial(t, name, addr)
	c.joinMeta(topic)
	r := &recorder{name: name, topic: topic, done: make(chan struct{})}
	go r.run(c.ws)
	t.Cleanup(func() {
		_ = c.ws.CloseNow()
		<-r.done
	})
	return r
}

func (r *recorder) run(ws *cws.Conn) {
	defer close(r.done)
	for {
		typ, data, err := ws.Read(context.Background())
		if err != nil {
			r.mu.Lock()
			r.readErr = err
			r.mu.Unlock()
			return
		}
		d, err := parseDelivery(string(data), r.topic)
		r.mu.Lock()
		if err != nil || typ != cws.MessageText {
			r.bad = append(r.bad, string(data))
		} else {
			r.deliveries = append(r.deliveries, d)
		}
		r.mu.Unlock()
	}
}

// snapshot returns a copy of what was received so far.
func (r *recorder) snapshot() (ds []delivery, bad []string, readErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		readErr = r.readErr
	default:
	}
	return append([]delivery(nil), r.deliveries...), append([]string(nil), r.bad...), readErr
}

// attempt is one publish of the failover test.
type attempt struct {
	n          int
	start, end time.Time
	status     int
	pos        published // with status 200
	err        error
}

// TestFailover kills a topic's owner with SIGKILL while a publisher goes on
// publishing with ack=replicated, and checks that every acknowledged message
// reaches clients on both gateways exactly once, in order, in one epoch.
// It logs the time from the kill to the first acknowledged publish after it:
//
//	go test -race -count=1 -run 'TestFailover$' -v ./examples/cluster
func TestFailover(t *testing.T) {
	// History holds every message of the run: a gateway whose subscription
	// takes a while to re-register with the new owner (a request lost with
	// the failed owner's link waits for its timeout) still recovers what it
	// missed, however fast the publisher goes meanwhile.
	c := startCluster(t, 2, 3, "--failure-detection", "fast", "--history-size", strconv.Itoa(2*failoverAttempts))
	g1, g2 := c.gateways[0].addr("listen"), c.gateways[1].addr("listen")
	clients := []*recorder{record(t, "A", g1, failoverTopic), record(t, "B", g2, failoverTopic)}

	// The publisher: unique payloads {"n": k}, ack=replicated, on gateway 1.
	// It asks for the kill once killAfterAcked were acknowledged, and goes on.
	var (
		mu       sync.Mutex
		attempts []attempt
	)
	killNow := make(chan struct{})
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	t.Cleanup(func() { // before the processes stop, should the test end early
		close(stopPub)
		<-pubDone
	})
	go func() {
		defer close(pubDone)
		acked := 0
		stop := time.Now().Add(failoverDuration)
		for n := 1; n <= failoverAttempts && time.Now().Before(stop); n++ {
			select {
			case <-stopPub:
				return
			default:
			}
			a := attempt{n: n, start: time.Now()}
			a.status, a.pos, a.err = publishN(g1, failoverTopic, "replicated", n, failoverPublishTimeout)
			a.end = time.Now()
			mu.Lock()
			attempts = append(attempts, a)
			mu.Unlock()
			if a.err != nil {
				time.Sleep(failoverRetry) // the owner is failing over: retry soon
				continue
			}
			if acked++; acked == killAfterAcked {
				close(killNow)
			}
		}
	}()

	var (
		owner    *proc
		killedAt time.Time
	)
	select {
	case <-killNow:
	case <-pubDone:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the publisher stopped before %d publishes were acknowledged; last attempt: %+v", killAfterAcked, attempts[len(attempts)-1])
	}
	var before topicState
	getJSON(t, "http://"+g2+"/api/topics/"+failoverTopic, &before)
	for _, p := range c.topics {
		if p.nodeName() == before.Owner {
			owner = p
		}
	}
	if owner == nil {
		t.Fatalf("%s is owned by %q, not by a topic server", failoverTopic, before.Owner)
	}
	if err := owner.cmd.Process.Kill(); err != nil { // SIGKILL by PID: no hand-off, no leave
		t.Fatalf("killing %s: %v", owner.label, err)
	}
	killedAt = time.Now()
	if code, _ := owner.waitExit(testTimeout); code != -1 {
		t.Fatalf("%s exited with status %d, want death by SIGKILL", owner.label, code)
	}

	select {
	case <-pubDone:
	case <-time.After(failoverDuration + 2*testTimeout):
		t.Fatal("the publisher did not finish")
	}
	mu.Lock()
	all := append([]attempt(nil), attempts...)
	mu.Unlock()

	// Kill to the first acknowledged publish sent after the kill.
	ack := make(map[int]published) // n -> position, for acknowledged publishes
	var (
		recovery       time.Duration
		recovered      bool
		failedBefore   int // after the kill, before the first acknowledged publish
		failedLater    int
		ackedAfter     int
		lastFailedSeen string
	)
	for _, a := range all {
		if a.err == nil {
			ack[a.n] = a.pos
		}
		if a.start.Before(killedAt) {
			continue
		}
		if a.err != nil {
			t.Logf("after the kill: publish n=%d failed after %v: %d %v", a.n, a.end.Sub(a.start).Round(time.Millisecond), a.status, a.err)
			if recovered {
				failedLater++
			} else {
				failedBefore++
			}
			lastFailedSeen = fmt.Sprintf("%d %v", a.status, a.err)
			continue
		}
		ackedAfter++
		if !recovered {
			t.Logf("after the kill: publish n=%d acknowledged after %v with seq %d", a.n, a.end.Sub(a.start).Round(time.Millisecond), a.pos.Seq)
			recovered, recovery = true, a.end.Sub(killedAt)
		}
	}
	if !recovered {
		t.Fatalf("no publish was acknowledged after %s was killed (%d attempts failed; last: %s)", owner.label, failedBefore, lastFailedSeen)
	}
	t.Logf("kill-to-recovery: %v (%s owned %s and was killed after %d acknowledged publishes; %d attempts failed until then, %d later; %d were acknowledged after the kill)",
		recovery.Round(time.Millisecond), owner.label, failoverTopic, killAfterAcked, failedBefore, failedLater, ackedAfter)
	if recovery > recoveryBound {
		t.Errorf("the topic took %v to accept publishes again after its owner was killed; want under %v", recovery, recoveryBound)
	}
	if ackedAfter < 50 {
		t.Errorf("only %d publishes were acknowledged after the kill", ackedAfter)
	}

	// One epoch for every acknowledged publish; the new owner is a survivor.
	var epoch uint64
	for n, p := range ack {
		if epoch == 0 {
			epoch = p.Epoch
		}
		if p.Epoch != epoch {
			t.Fatalf("publish %d was acknowledged in epoch %d, others in %d", n, p.Epoch, epoch)
		}
	}
	var after topicState
	getJSON(t, "http://"+g1+"/api/topics/"+failoverTopic, &after)
	if after.Owner == before.Owner || after.Epoch != epoch {
		t.Fatalf("after the failover %s is %+v; want a surviving owner and epoch %d", failoverTopic, after, epoch)
	}

	// Both clients receive every acknowledged publish exactly once, in
	// order, with the position it was acknowledged with.
	for _, r := range clients {
		var missing []int
		for deadline := time.Now().Add(testTimeout); ; time.Sleep(20 * time.Millisecond) {
			ds, bad, readErr := r.snapshot()
			got := make(map[int]bool, len(ds))
			for _, d := range ds {
				got[d.n] = true
			}
			missing = missing[:0]
			for n := range ack {
				if !got[n] {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 || len(bad) > 0 || readErr != nil || time.Now().After(deadline) {
				break
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("%s did not receive %d acknowledged publishes within %v: n=%v", r.name, len(missing), testTimeout, missing)
		}
		ds, bad, readErr := r.snapshot()
		if len(bad) > 0 {
			t.Fatalf("%s received frames other than broadcasts of %s: %q", r.name, failoverTopic, bad)
		}
		if readErr != nil {
			t.Fatalf("%s lost its socket: %v", r.name, readErr)
		}
		seen := make(map[int]delivery, len(ds))
		unacked := 0
		for i, d := range ds {
			if d.joinRef != "1" || d.epoch != epoch {
				t.Fatalf("%s: delivery %d %+v; want join_ref 1 and epoch %d", r.name, i, d, epoch)
			}
			if i > 0 && d.seq <= ds[i-1].seq {
				t.Fatalf("%s: seq %d (n=%d) after seq %d (n=%d): not increasing", r.name, d.seq, d.n, ds[i-1].seq, ds[i-1].n)
			}
			if prev, dup := seen[d.n]; dup {
				t.Fatalf("%s received n=%d twice: seq %d and %d", r.name, d.n, prev.seq, d.seq)
			}
			seen[d.n] = d
			if d.n < 1 || d.n > len(all) {
				t.Fatalf("%s received n=%d, never published", r.name, d.n)
			}
			if p, ok := ack[d.n]; !ok {
				unacked++
			} else if p.Seq != d.seq {
				t.Fatalf("%s received n=%d with seq %d; it was acknowledged with seq %d", r.name, d.n, d.seq, p.Seq)
			}
		}
		if len(ds) > 0 {
			t.Logf("%s received %d messages, %d of the %d acknowledged and %d unacknowledged, in order from seq %d to %d",
				r.name, len(ds), len(ds)-unacked, len(ack), unacked, ds[0].seq, ds[len(ds)-1].seq)
		}
	}
}
