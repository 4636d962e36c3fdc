package cli

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/ringcast/ringcast/pubsub"
)

// TestNotifyDurability: the notification system adds its rules, keeps the
// operator's, and refuses rules that would make notification topics
// memory-only.
func TestNotifyDurability(t *testing.T) {
	rules, err := notifyDurability([]pubsub.Durability{{Pattern: "*"}, {Pattern: "cursor:*", Memory: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pubsub.FormatDurability(rules); got != "*=durable; cursor:*=memory; notifications:*=durable; users:*=memory" {
		t.Fatalf("rules: %s", got)
	}
	kept, err := notifyDurability([]pubsub.Durability{{Pattern: "notifications:*", MaxCount: 10}, {Pattern: "users:*"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pubsub.FormatDurability(kept); got != "notifications:*=durable count=10; users:*=durable" {
		t.Fatalf("the operator's rules were not kept: %s", got)
	}
	for _, bad := range []string{"notifications:*", "notifications:dep*", "notifications:deploys"} {
		if _, err := notifyDurability([]pubsub.Durability{{Pattern: bad, Memory: true}}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("memory rule %q: %v", bad, err)
		}
	}
	// A shorter memory prefix is less specific than notifications:*.
	if _, err := notifyDurability([]pubsub.Durability{{Pattern: "notif*", Memory: true}}); err != nil {
		t.Errorf("notif*=memory: %v", err)
	}
}

// TestPublishDeniedToAnonymous: with --anonymous=false, POST /api/publish
// wants a token the notification system accepts; reserved prefixes are
// refused whoever asks.
func TestPublishDeniedToAnonymous(t *testing.T) {
	n := startNode(t, pubsub.Config{})
	auth := func(_ context.Context, token string) (string, error) {
		if token == "good" {
			return "alice", nil
		}
		return "", errors.New("unknown token")
	}
	_, base := apiServer(t, n, APIConfig{Publish: true, DenyAnonymous: true, Authenticate: auth, Reserved: NotifyPrefixes()})
	url := base + "/api/publish?topic=topics:matrix"
	r := do(t, http.MethodPost, url, `{"a":1}`)
	r.expectError(t, http.StatusUnauthorized, "anonymous publishing is off")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	for token, want := range map[string]int{"bad": http.StatusUnauthorized, "good": http.StatusOK} {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: %d, want %d", token, resp.StatusCode, want)
		}
	}
	// Without a way to check tokens, nothing gets in.
	_, closed := apiServer(t, n, APIConfig{Publish: true, DenyAnonymous: true})
	do(t, http.MethodPost, closed+"/api/publish?topic=topics:matrix", `{"a":1}`).expectError(t, http.StatusUnauthorized, "anonymous")
	// Reserved prefixes, anonymous allowed.
	_, open := apiServer(t, n, APIConfig{Publish: true, Reserved: NotifyPrefixes()})
	do(t, http.MethodPost, open+"/api/publish?topic=notifications:x", `{"a":1}`).expectError(t, http.StatusForbidden, "reserved")
	do(t, http.MethodPost, open+"/api/publish?topic=users:bob", `{"a":1}`).expectError(t, http.StatusForbidden, "reserved")
}
