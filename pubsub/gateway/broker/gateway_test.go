package broker_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// serveGateway serves a gateway backed by n on 127.0.0.1 and returns its
// Phoenix socket URL.
func serveGateway(t *testing.T, n *pubsub.Node) (*gateway.Handler, string) {
	t.Helper()
	h := gateway.NewHandler(broker.New(n), nil)
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close() })
	return h, "ws://" + srv.Listener.Addr().String() + "/socket/websocket?vsn=2.0.0"
}

// Two gateways on two nodes of one cluster, the topic owned by a third:
// the session a websocat user sees.
func TestGatewaysAcrossNodes(t *testing.T) {
	owner := startNode(t, "topics", "", pubsub.RoleTopics)
	g1 := startNode(t, "gateway-1", owner.GossipAddr(), pubsub.RoleGateway)
	g2 := startNode(t, "gateway-2", owner.GossipAddr(), pubsub.RoleGateway)
	waitMembers(t, owner, g1, g2)
	h1, url1 := serveGateway(t, g1)
	_, url2 := serveGateway(t, g2)

	const (
		join      = `["1","1","topics:matrix","phx_join",{}]`
		joined    = `["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`
		publish   = `["1","1","topics:matrix","publish",["event",{"message":"red pill or blue pill?"}]]`
		published = `["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`
		broadcast = `["1",null,"topics:matrix","event",{"message":"red pill or blue pill?"}]`
	)
	a := dial(t, url1)
	a.send(join)
	a.expect(joined)
	a2 := dial(t, url1) // a second client on gateway 1 shares its node subscription
	a2.send(join)
	a2.expect(joined)
	b := dial(t, url2)
	b.send(join)
	b.expect(joined)
	b.send(publish)
	b.expect(published)
	b.expect(broadcast)
	a.expect(broadcast)
	a2.expect(broadcast)

	if s := g1.Stats(); s.Subscriptions != 1 || s.LocalTopics != 1 {
		t.Fatalf("gateway-1 node has %d subscriptions on %d topics, want 1 on 1", s.Subscriptions, s.LocalTopics)
	}
	if s := h1.Stats(); s.Connections != 2 || s.Topics != 1 {
		t.Fatalf("gateway-1 handler has %d connections on %d topics, want 2 on 1", s.Connections, s.Topics)
	}

	// A message published on the owner node, as the HTTP API does, reaches
	// every client with its own join_ref.
	data := gateway.EncodeEnvelope("event", []byte(`{"n":2}`), false)
	if _, err := owner.Publish(ctxT(t), "topics:matrix", data); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	const second = `["1",null,"topics:matrix","event",{"n":2}]`
	for _, c := range []*wsClient{a, a2, b} {
		c.expect(second)
	}

	// Closing the gateway's node ends its subscription: its clients get
	// phx_error for their channel.
	if err := g1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range []*wsClient{a, a2} {
		c.expect(`["1","1","topics:matrix","phx_error",{}]`)
	}
}
