package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

func TestTopicListing(t *testing.T) {
	g := pubsub.FastGossip()
	a := startNode(t, pubsub.Config{NodeName: "a", Gossip: g})
	b := startNode(t, pubsub.Config{NodeName: "b", Gossip: g, Seeds: []string{a.GossipAddr()}})
	gw := startNode(t, pubsub.Config{NodeName: "gw", Gossip: g, Roles: []string{pubsub.RoleGateway}, Seeds: []string{a.GossipAddr()}})
	deadline := time.Now().Add(testTimeout)
	for len(a.Members()) != 3 || len(b.Members()) != 3 || len(gw.Members()) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not converge")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var want []string
	for i := range 12 {
		topic := fmt.Sprintf("room:%02d", i)
		want = append(want, topic)
		if _, err := gw.Publish(ctx, topic, []byte(`"x"`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := gw.Publish(ctx, "other", []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}

	// The gateway answers for the cluster: it owns no topic itself.
	_, base := apiServer(t, gw, APIConfig{})
	for _, path := range []string{"/api/cluster/topics", "/api/topics"} {
		var got []string
		owners := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 12 {
				t.Fatalf("%s: listing never ends", path)
			}
			u := base + path + "?prefix=room:&limit=5"
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			r := do(t, http.MethodGet, u, "")
			var p pubsub.TopicPage
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(r.body), &p) != nil {
				t.Fatalf("GET %s: %d %s", u, r.status, r.body)
			}
			if len(p.Topics) > 5 || p.Partial {
				t.Fatalf("GET %s: %s", u, r.body)
			}
			for _, ts := range p.Topics {
				got = append(got, ts.Topic)
				owners[ts.Owner] = true
				if ts.Seq != 1 || ts.Epoch == 0 {
					t.Fatalf("GET %s: %+v", u, ts)
				}
			}
			if cursor = p.Next; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) || owners["gw"] || len(owners) != 2 {
			t.Fatalf("%s listed %v from %v\nwant %v from a and b", path, got, owners, want)
		}
	}
	r := do(t, http.MethodGet, base+"/api/topics", "")
	var p pubsub.TopicPage
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &p) != nil || len(p.Topics) != 13 || p.Next != "" {
		t.Fatalf("GET /api/topics: %d %s", r.status, r.body)
	}

	// With the notification system mounted, /api/topics is its own.
	mux := http.NewServeMux()
	NewAPI(gw, APIConfig{Notify: func(context.Context) any { return nil }}).Register(mux)
	if _, pattern := mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/api/topics"}}); pattern == "/api/topics" {
		t.Fatal("the listing claims /api/topics beside the notification system")
	}
	if _, pattern := mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/api/cluster/topics"}}); pattern != "/api/cluster/topics" {
		t.Fatalf("/api/cluster/topics served by %q", pattern)
	}
}

func TestTopicListingBadInput(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, base := apiServer(t, n, APIConfig{})
	for _, q := range []string{
		"limit=-1", "limit=0", "limit=100000", "limit=1001", "limit=ten", "limit=",
		"cursor=not-a-cursor!", "cursor=" + pubsub.EncodeTopicCursor("\xff"),
		"prefix=" + url.QueryEscape(string(make([]byte, pubsub.MaxTopicLen+1))),
	} {
		for _, path := range []string{"/api/cluster/topics", "/api/topics"} {
			do(t, http.MethodGet, base+path+"?"+q, "").expectError(t, http.StatusBadRequest, "")
		}
	}
	do(t, http.MethodPost, base+"/api/cluster/topics", "{}").expectError(t, http.StatusMethodNotAllowed, "not allowed")
	r := do(t, http.MethodGet, base+"/api/cluster/topics?limit=1000", "")
	if r.status != http.StatusOK || r.body != "{\"topics\":[],\"partial\":false}\n" {
		t.Fatalf("empty listing: %d %q", r.status, r.body)
	}
}
