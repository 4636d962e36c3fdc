package access

import (
	"errors"
	"strings"
	"testing"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// policyConfig is the namespaces the policy tests decide on.
const policyConfig = `
[default]
subscribe = "anyone"
publish = "clients"

[namespaces.admin]
subscribe = "claim"
publish = "api"
history = false
anonymous = false

[namespaces.rooms]
publish = "authenticated"

[namespaces.private]
subscribe = "authenticated"

[namespaces.orders]
subscribe = "claim"
publish = "claim"

[namespaces.feed]
history = false

[namespaces.notifications]
publish = "creator"
`

func testPolicy(t testing.TB, anonymous bool) *Policy {
	t.Helper()
	cfg, err := ParseConfig("policy.toml", []byte(policyConfig))
	if err != nil {
		t.Fatal(err)
	}
	return NewPolicy(cfg, anonymous)
}

var (
	anon    = Who{}
	alice   = Who{Identity: gateway.Identity{User: "alice"}}
	billing = Who{Identity: gateway.Identity{User: "bob", Data: &Claims{Subject: "bob", Channels: []string{"admin:billing", "orders:7*"}}}}
	apiKey  = Who{APIKey: true}
)

const (
	sub  = gateway.ActionSubscribe
	hist = gateway.ActionHistory
	pub  = gateway.ActionPublish
)

// TestDecide: each namespace's rules, for each kind of party.
func TestDecide(t *testing.T) {
	p := testPolicy(t, true)
	type want int
	const (
		ok want = iota
		unauthorized
		forbidden
		noHistory
	)
	for _, tc := range []struct {
		who    Who
		name   string
		action gateway.Action
		topic  string
		want   want
	}{
		// Open topics: today's behaviour.
		{anon, "anon", sub, "topics:matrix", ok},
		{anon, "anon", hist, "topics:matrix", ok},
		{anon, "anon", pub, "topics:matrix", ok},
		{anon, "anon", pub, "lobby", ok},
		// admin: anonymous joins refused, forged publishes refused, no history.
		{anon, "anon", sub, "admin:billing", unauthorized},
		{anon, "anon", pub, "admin:billing", unauthorized},
		{anon, "anon", hist, "admin:billing", unauthorized},
		{alice, "alice", sub, "admin:billing", forbidden},
		{alice, "alice", pub, "admin:billing", forbidden},
		{billing, "bob", sub, "admin:billing", ok},
		{billing, "bob", sub, "admin:payroll", forbidden},
		{billing, "bob", hist, "admin:billing", noHistory},
		{billing, "bob", pub, "admin:billing", forbidden},
		{apiKey, "api key", pub, "admin:billing", ok},
		{apiKey, "api key", sub, "admin:billing", forbidden},
		// rooms: anyone reads, users talk.
		{anon, "anon", sub, "rooms:1", ok},
		{anon, "anon", pub, "rooms:1", unauthorized},
		{alice, "alice", pub, "rooms:1", ok},
		// private: users only; clients publish where they subscribe.
		{anon, "anon", sub, "private:1", unauthorized},
		{anon, "anon", pub, "private:1", unauthorized},
		{alice, "alice", pub, "private:1", ok},
		// orders: the claim grants exactly its topics.
		{billing, "bob", sub, "orders:7", ok},
		{billing, "bob", pub, "orders:71", ok},
		{billing, "bob", pub, "orders:8", forbidden},
		{alice, "alice", sub, "orders:7", forbidden},
		{anon, "anon", sub, "orders:7", unauthorized},
		// feed: live only.
		{anon, "anon", sub, "feed:x", ok},
		{anon, "anon", hist, "feed:x", noHistory},
		// notifications: the creator only, never a client or an API key.
		{alice, "alice", pub, "notifications:deploys", forbidden},
		{apiKey, "api key", pub, "notifications:deploys", forbidden},
	} {
		err := p.Decide(tc.action, tc.topic, tc.who)
		var d *Denial
		if err != nil && !errors.As(err, &d) {
			t.Errorf("%s %s %s: %v is no *Denial", tc.name, tc.action, tc.topic, err)
			continue
		}
		var got want
		switch {
		case d == nil:
			got = ok
		case d.Reason == ReasonHistory:
			got = noHistory
		case d.Unauthorized && d.Reason == ReasonUnauthorized:
			got = unauthorized
		case !d.Unauthorized && strings.HasPrefix(d.Reason, ReasonForbidden+": "):
			got = forbidden
		default:
			t.Errorf("%s %s %s: odd denial %+v", tc.name, tc.action, tc.topic, d)
			continue
		}
		if got != tc.want {
			t.Errorf("%s %s %s: %v (%d), want %d", tc.name, tc.action, tc.topic, err, got, tc.want)
		}
	}
}

// TestDenyAnonymous: --anonymous=false refuses anonymous parties in every
// namespace; users and API keys go on.
func TestDenyAnonymous(t *testing.T) {
	for _, p := range []*Policy{NewPolicy(nil, false), testPolicy(t, false)} {
		for _, topic := range []string{"lobby", "topics:matrix", "feed:x"} {
			for _, a := range []gateway.Action{sub, hist, pub} {
				if err := p.Decide(a, topic, anon); err == nil {
					t.Errorf("anonymous %s %s allowed", a, topic)
				}
			}
			if err := p.Decide(pub, topic, alice); err != nil {
				t.Errorf("alice publish %s: %v", topic, err)
			}
			if err := p.Decide(pub, topic, apiKey); err != nil {
				t.Errorf("API key publish %s: %v", topic, err)
			}
		}
	}
	// Without a config and with anonymous clients, everything is open.
	open := NewPolicy(nil, true)
	for _, topic := range []string{"admin:billing", "lobby", "notifications:x"} {
		for _, a := range []gateway.Action{sub, hist, pub} {
			if err := open.Decide(a, topic, anon); err != nil {
				t.Errorf("open %s %s: %v", a, topic, err)
			}
		}
	}
}

// TestAuthorize: the gateway hook refuses with the denial's reason as
// the client reads it.
func TestAuthorize(t *testing.T) {
	p := testPolicy(t, true)
	for _, tc := range []struct {
		req    gateway.Request
		reason string
	}{
		{gateway.Request{Action: sub, Topic: "admin:billing"}, "unauthorized"},
		{gateway.Request{Action: pub, Topic: "admin:billing", Identity: alice.Identity}, `forbidden: only the HTTP API with an API key publishes to namespace "admin"`},
		{gateway.Request{Action: hist, Topic: "feed:x"}, "history not allowed"},
		{gateway.Request{Action: sub, Topic: "orders:8", Identity: billing.Identity}, `forbidden: the token's channels claim does not grant "orders:8"`},
		{gateway.Request{Action: sub, Topic: "topics:matrix"}, ""},
	} {
		err := p.Authorize(tc.req)
		var re *gateway.RefusalError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s %s: %v", tc.req.Action, tc.req.Topic, err)
		case tc.reason != "" && (!errors.As(err, &re) || re.Reason != tc.reason):
			t.Errorf("%s %s: %v, want reason %q", tc.req.Action, tc.req.Topic, err, tc.reason)
		}
	}
}
