package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// phxMessage is a Phoenix V2 message as a client reads it.
type phxMessage struct {
	topic, event string
	payload      json.RawMessage
}

// readPhx reads one message of c and decodes its array.
func (c *wsClient) readPhx() phxMessage {
	c.t.Helper()
	return c.decodePhx([]byte(c.read()))
}

// decodePhx decodes one Phoenix V2 message c read.
func (c *wsClient) decodePhx(data []byte) phxMessage {
	c.t.Helper()
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || len(parts) != 5 {
		c.t.Fatalf("%s: not a Phoenix V2 message: %s", c.name, data)
	}
	var m phxMessage
	_ = json.Unmarshal(parts[2], &m.topic)
	_ = json.Unmarshal(parts[3], &m.event)
	m.payload = parts[4]
	return m
}

// readPhxWithin reads one message of c if one comes within d.
func (c *wsClient) readPhxWithin(d time.Duration) (phxMessage, bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return phxMessage{}, false
		}
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	return c.decodePhx(data), true
}

// presenceSet follows presence_state and presence_diff as phoenix.js's
// Presence does: key -> the phx_refs of its metas.
type presenceSet map[string]map[string]bool

type presenceMetas map[string]struct {
	Metas []map[string]any `json:"metas"`
}

func (s presenceSet) apply(t testing.TB, m phxMessage) {
	t.Helper()
	add := func(ps presenceMetas) {
		for key, e := range ps {
			if s[key] == nil {
				s[key] = map[string]bool{}
			}
			for _, meta := range e.Metas {
				s[key][fmt.Sprint(meta["phx_ref"])] = true
			}
		}
	}
	switch m.event {
	case "presence_state":
		var ps presenceMetas
		if err := json.Unmarshal(m.payload, &ps); err != nil {
			t.Fatalf("presence_state %s: %v", m.payload, err)
		}
		clear(s)
		add(ps)
	case "presence_diff":
		var d struct{ Joins, Leaves presenceMetas }
		if err := json.Unmarshal(m.payload, &d); err != nil {
			t.Fatalf("presence_diff %s: %v", m.payload, err)
		}
		add(d.Joins)
		for key, e := range d.Leaves {
			for _, meta := range e.Metas {
				delete(s[key], fmt.Sprint(meta["phx_ref"]))
			}
			if len(s[key]) == 0 {
				delete(s, key)
			}
		}
	}
}

// keys returns how many metas each key has.
func (s presenceSet) keys() map[string]int {
	out := make(map[string]int, len(s))
	for k, refs := range s {
		out[k] = len(refs)
	}
	return out
}

// awaitPresence reads c's messages until its presence set is want.
func (c *wsClient) awaitPresence(s presenceSet, want map[string]int) {
	c.t.Helper()
	for !equalCounts(s.keys(), want) {
		m := c.readPhx()
		s.apply(c.t, m)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestPresenceAcrossGatewayProcesses runs the binaries with --presence:
// alice on gateway 1 and bob on gateway 2 see each other in the Phoenix
// presence format; bob's second connection is a second meta of one key;
// gateway 2 killed with SIGKILL makes bob leave alice's set within the
// failure detection time; bob joining again through gateway 1 is one meta,
// not a phantom duplicate.
func TestPresenceAcrossGatewayProcesses(t *testing.T) {
	c := startCluster(t, 2, 1, "--presence", "rooms:*")
	g1, g2 := c.gateways[0].addr("listen"), c.gateways[1].addr("listen")
	join := func(key string) string {
		return `["1","1","rooms:lobby","phx_join",{"presence":{"key":"` + key + `","meta":{"device":"test"}}}]`
	}

	alice := dial(t, "alice", g1)
	alice.send(join("alice"))
	alice.expect(`["1","1","rooms:lobby","phx_reply",{"status":"ok","response":{}}]`)
	seen := presenceSet{}
	alice.awaitPresence(seen, map[string]int{"alice": 1})

	bob := dial(t, "bob", g2)
	bob.send(join("bob"))
	bob.expect(`["1","1","rooms:lobby","phx_reply",{"status":"ok","response":{}}]`)
	bob.awaitPresence(presenceSet{}, map[string]int{"alice": 1, "bob": 1})
	alice.awaitPresence(seen, map[string]int{"alice": 1, "bob": 1})

	phone := dial(t, "bob's phone", g2)
	phone.send(join("bob"))
	phone.expect(`["1","1","rooms:lobby","phx_reply",{"status":"ok","response":{}}]`)
	alice.awaitPresence(seen, map[string]int{"alice": 1, "bob": 2})

	killed := time.Now()
	c.gateways[1].signal(syscall.SIGKILL)
	alice.awaitPresence(seen, map[string]int{"alice": 1})
	t.Logf("bob left alice's set %v after gateway-2 was killed", time.Since(killed).Round(time.Millisecond))

	again := dial(t, "bob again", g1)
	again.send(join("bob"))
	again.expect(`["1","1","rooms:lobby","phx_reply",{"status":"ok","response":{}}]`)
	alice.awaitPresence(seen, map[string]int{"alice": 1, "bob": 1})
	mine := presenceSet{}
	again.awaitPresence(mine, map[string]int{"alice": 1, "bob": 1})

	// A topic no rule names has no presence: the join carries none.
	other := dial(t, "other", g1)
	other.send(`["2","2","lobby","phx_join",{"presence":{"key":"carol"}}]`)
	other.expect(`["2","2","lobby","phx_reply",{"status":"ok","response":{}}]`)
	if status, body, err := httpDo("POST", "http://"+g1+"/api/publish?topic=lobby&event=ping", `{}`); status != 200 {
		t.Fatalf("POST /api/publish = %d %s %v", status, body, err)
	}
	if m := other.readPhx(); m.event != "ping" {
		t.Fatalf("a join without presence got %s %s before the broadcast", m.event, m.payload)
	}
}

// TestQueueGroupAcrossGatewayProcesses: clients on two gateway processes
// join one topic with {"queue":"workers"}; every message published goes
// to exactly one of them, while a plain subscriber gets them all.
func TestQueueGroupAcrossGatewayProcesses(t *testing.T) {
	c := startCluster(t, 2, 1)
	g1, g2 := c.gateways[0].addr("listen"), c.gateways[1].addr("listen")
	ok := `["1","1","jobs:resize","phx_reply",{"status":"ok","response":{}}]`
	workers := []*wsClient{dial(t, "worker-1", g1), dial(t, "worker-2", g2)}
	for _, w := range workers {
		w.send(`["1","1","jobs:resize","phx_join",{"queue":"workers"}]`)
		w.expect(ok)
	}
	plain := dial(t, "plain", g2)
	plain.send(`["1","1","jobs:resize","phx_join",{}]`)
	plain.expect(ok)

	const messages = 200
	for i := range messages {
		if status, body, err := httpDo("POST", "http://"+g1+"/api/publish?topic=jobs:resize&event=job", `{"n":`+strconv.Itoa(i)+`}`); status != 200 {
			t.Fatalf("publish %d = %d %s %v", i, status, body, err)
		}
	}
	n := func(m phxMessage) int {
		var p struct{ N int }
		if m.event != "job" || json.Unmarshal(m.payload, &p) != nil {
			t.Fatalf("unexpected %s %s", m.event, m.payload)
		}
		return p.N
	}
	for i := range messages {
		if got := n(plain.readPhx()); got != i {
			t.Fatalf("plain subscriber got n=%d, want %d", got, i)
		}
	}
	// Each worker reads what it was given until nothing more comes for a
	// while; the messages wait in its socket meanwhile.
	got := map[int]int{}
	shares := make([]int, len(workers))
	for i, w := range workers {
		for {
			m, ok := w.readPhxWithin(2 * time.Second)
			if !ok {
				break
			}
			got[n(m)]++
			shares[i]++
		}
	}
	for i := range messages {
		if got[i] != 1 {
			t.Fatalf("message %d reached the group %d times (shares %v)", i, got[i], shares)
		}
	}
	if len(got) != messages {
		t.Fatalf("the group got %d distinct messages, want %d", len(got), messages)
	}
	for i, s := range shares {
		if s == 0 {
			t.Fatalf("worker-%d got none of %d messages (shares %v)", i+1, messages, shares)
		}
	}
	t.Logf("shares of %d messages: %v", messages, shares)
}
