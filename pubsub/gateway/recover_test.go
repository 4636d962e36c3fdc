package gateway

import (
	"context"
	"testing"
)

func TestResumeWithSince(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	for i := 1; i <= 5; i++ {
		publishJSON(t, b, "t:r", "e", `{"i":`+string(rune('0'+i))+`}`)
	}
	c := g.dial()
	c.send(`["1","1","t:r","phx_join",{"since":2,"epoch":"1"}]`)
	c.expect(`["1","1","t:r","phx_reply",{"status":"ok","response":{"recovered":3,"epoch":"1","seq":2}}]`)
	c.expect(`["1",null,"t:r","e",{"i":3},{"seq":3,"epoch":"1"}]`)
	c.expect(`["1",null,"t:r","e",{"i":4},{"seq":4,"epoch":"1"}]`)
	c.expect(`["1",null,"t:r","e",{"i":5},{"seq":5,"epoch":"1"}]`)
	publishJSON(t, b, "t:r", "e", `{"i":6}`)
	c.expect(`["1",null,"t:r","e",{"i":6},{"seq":6,"epoch":"1"}]`)

	// Nothing new since the head: recovered 0, then live.
	h := g.dial()
	h.send(`["1","1","t:r","phx_join",{"since":"6","epoch":1}]`)
	h.expect(`["1","1","t:r","phx_reply",{"status":"ok","response":{"recovered":0,"epoch":"1","seq":6}}]`)

	// A stale epoch: the reply says where the topic is now, and the join
	// goes on live.
	r := g.dial()
	r.send(`["1","1","t:r","phx_join",{"since":2,"epoch":"9"}]`)
	r.expect(`["1","1","t:r","phx_reply",{"status":"ok","response":{"recovered":false,"reset":true,"epoch":"1","seq":6}}]`)
	publishJSON(t, b, "t:r", "e", `{"i":7}`)
	c.expect(`["1",null,"t:r","e",{"i":7},{"seq":7,"epoch":"1"}]`)
	h.expect(`["1",null,"t:r","e",{"i":7},{"seq":7,"epoch":"1"}]`)
	r.expect(`["1",null,"t:r","e",{"i":7},{"seq":7,"epoch":"1"}]`)

	// Resuming a joined topic replaces the join and its subscription.
	c.send(`["2","2","t:r","phx_join",{"since":5}]`)
	c.expect(`["1","1","t:r","phx_close",{}]`)
	c.expect(`["2","2","t:r","phx_reply",{"status":"ok","response":{"recovered":2,"epoch":"1","seq":5}}]`)
	c.expect(`["2",null,"t:r","e",{"i":6},{"seq":6,"epoch":"1"}]`)
	c.expect(`["2",null,"t:r","e",{"i":7},{"seq":7,"epoch":"1"}]`)

	// Leaving a resumed join ends its subscription.
	c.send(`["2","3","t:r","phx_leave",{}]`)
	c.expect(okReply("2", "3", "t:r"))
	c.expect(`["2","2","t:r","phx_close",{}]`)
	publishJSON(t, b, "t:r", "e", `{"i":8}`)
	h.expect(`["1",null,"t:r","e",{"i":8},{"seq":8,"epoch":"1"}]`)
	c.send(`[null,"9","phoenix","heartbeat",{}]`)
	c.expect(`[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

func TestResumeHistoryGone(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	for range MemoryHistory + 10 {
		publishJSON(t, b, "t:old", "e", `{}`)
	}
	c := g.dial()
	c.send(`["1","1","t:old","phx_join",{"since":3}]`)
	c.expect(`["1","1","t:old","phx_reply",{"status":"ok","response":{"recovered":false,"reset":true,"epoch":"1","seq":1034}}]`)
	if got := g.h.Stats().Resets; got != 1 {
		t.Fatalf("Resets = %d, want 1", got)
	}
}

// A since the topic has not reached resets the join to the head, which the
// live messages follow.
func TestResumeBeyondTheHead(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	for range 5 {
		publishJSON(t, b, "t:ahead", "e", `{}`)
	}
	c := g.dial()
	c.send(`["1","1","t:ahead","phx_join",{"since":99}]`)
	c.expect(`["1","1","t:ahead","phx_reply",{"status":"ok","response":{"recovered":false,"reset":true,"epoch":"1","seq":5}}]`)
	publishJSON(t, b, "t:ahead", "e", `{"i":6}`)
	c.expect(`["1",null,"t:ahead","e",{"i":6},{"seq":6,"epoch":"1"}]`)
	if got := g.h.Stats().Resets; got != 1 {
		t.Fatalf("Resets = %d, want 1", got)
	}
}

// plainBroker hides MemoryBroker's history: a Broker that is no Recoverer.
type plainBroker struct{ b *MemoryBroker }

func (p plainBroker) Subscribe(ctx context.Context, topic string, deliver func(Message), closed func(error)) (func() error, error) {
	return p.b.Subscribe(ctx, topic, deliver, closed)
}

func (p plainBroker) Publish(ctx context.Context, topic string, data []byte) (uint64, error) {
	return p.b.Publish(ctx, topic, data)
}

func TestResumeRefused(t *testing.T) {
	g := newGateway(t, plainBroker{NewMemoryBroker()}, nil)
	c := g.dial()
	c.send(`["1","1","t:x","phx_join",{"since":1}]`)
	c.expect(errReply("1", "1", "t:x", reasonNoRecovery))
	for _, bad := range []string{`{"since":-1}`, `{"since":"abc"}`, `{"since":1.5}`, `{"since":1,"epoch":"x"}`, `{"since":{}}`} {
		c.send(`["1","2","t:x","phx_join",` + bad + `]`)
		c.expect(errReply("1", "2", "t:x", reasonJoinPayload))
	}
	// The connection still works.
	c.join("3", "t:x")
}
