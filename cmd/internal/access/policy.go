package access

import (
	"fmt"
	"strings"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// Reasons a refused client reads (the "reason" of a Phoenix error reply).
const (
	// ReasonUnauthorized refuses a connection without a token, or (over
	// HTTP) with one that is not valid.
	ReasonUnauthorized = "unauthorized"
	// ReasonHistory refuses a join with since where history is off.
	ReasonHistory = "history not allowed"
	// ReasonForbidden starts the reason of every other refusal:
	// "forbidden: ...".
	ReasonForbidden = "forbidden"
)

// Denial is a refusal by Policy.Decide.
type Denial struct {
	// Unauthorized is true when credentials are missing (HTTP 401); a
	// denial with credentials is forbidden (403).
	Unauthorized bool
	// Reason is what a WebSocket client reads: ReasonUnauthorized,
	// ReasonHistory or "forbidden: ...".
	Reason string
	// Detail explains the refusal to an HTTP client and in logs.
	Detail string
}

func (d *Denial) Error() string {
	if d.Detail == "" || strings.HasSuffix(d.Reason, d.Detail) {
		return d.Reason
	}
	return d.Reason + ": " + d.Detail
}

// Who is the party a decision is about.
type Who struct {
	// Identity is the connection's (or the HTTP request's token's): User
	// "" for an anonymous party; Data a *Claims for a JWT.
	Identity gateway.Identity
	// APIKey is true for an HTTP request that presented an API key.
	APIKey bool
}

// Policy decides who may subscribe to, read the history of and publish to
// each topic, from a Config's rules. It is safe for concurrent use.
type Policy struct {
	cfg           *Config
	denyAnonymous bool
}

// NewPolicy returns the policy of cfg (nil: Open for every topic). With
// anonymous false, no namespace admits anonymous connections, whatever
// cfg says (--anonymous=false).
func NewPolicy(cfg *Config, anonymous bool) *Policy {
	return &Policy{cfg: cfg, denyAnonymous: !anonymous}
}

// Rules returns the namespace of topic and its rules, --anonymous=false
// applied.
func (p *Policy) Rules(topic string) (string, Rules) {
	ns, r := p.cfg.Rules(topic)
	if p.denyAnonymous {
		r.Anonymous = false
	}
	return ns, r
}

// Authorize is the gateway's Options.Authorize: it decides a client's
// join, history read or publish with Decide and refuses with the
// Denial's reason; the connection stays open.
func (p *Policy) Authorize(req gateway.Request) error {
	if err := p.Decide(req.Action, req.Topic, Who{Identity: req.Identity}); err != nil {
		return gateway.Refuse(err.(*Denial).Reason)
	}
	return nil
}

// nsName names a namespace in a refusal.
func nsName(ns string) string {
	if ns == "" {
		return "the default namespace"
	}
	return fmt.Sprintf("namespace %q", ns)
}

// Decide decides whether who may do action on topic, and returns nil or
// a *Denial:
//
//   - an anonymous party is refused everything where the namespace does
//     not admit anonymous connections;
//   - ActionSubscribe follows the subscribe rule;
//   - ActionHistory needs history = true;
//   - ActionPublish follows the publish rule: "clients" as subscribe,
//     "authenticated" any token, "claim" a JWT whose channels grant the
//     topic, "creator" and "api" no client. An API key (HTTP only)
//     publishes everywhere but where publish = "creator".
func (p *Policy) Decide(action gateway.Action, topic string, who Who) error {
	ns, r := p.Rules(topic)
	if who.APIKey {
		if action == gateway.ActionPublish && r.Publish != PublishCreator {
			return nil
		}
		if action == gateway.ActionPublish {
			return creatorOnly(ns)
		}
		return forbidden("an API key only publishes over HTTP")
	}
	anon := who.Identity.Anonymous()
	if anon && !r.Anonymous {
		return &Denial{Unauthorized: true, Reason: ReasonUnauthorized,
			Detail: fmt.Sprintf("%s admits no anonymous connection: connect with a token", nsName(ns))}
	}
	switch action {
	case gateway.ActionSubscribe:
		return p.subscribe(ns, r, topic, who)
	case gateway.ActionHistory:
		if !r.History {
			return &Denial{Reason: ReasonHistory, Detail: fmt.Sprintf("%s does not let clients read history (since)", nsName(ns))}
		}
		return nil
	case gateway.ActionPublish:
		switch r.Publish {
		case PublishClients:
			return p.subscribe(ns, r, topic, who)
		case PublishAuthenticated:
			if anon {
				return needToken(ns, "publish")
			}
			return nil
		case PublishClaim:
			return claim(ns, topic, who, "publish")
		case PublishCreator:
			return creatorOnly(ns)
		default:
			return forbidden(fmt.Sprintf("only the HTTP API with an API key publishes to %s", nsName(ns)))
		}
	}
	return forbidden("unknown action " + action.String())
}

func (p *Policy) subscribe(ns string, r Rules, topic string, who Who) error {
	switch r.Subscribe {
	case SubscribeAnyone:
		return nil
	case SubscribeAuthenticated:
		if who.Identity.Anonymous() {
			return needToken(ns, "subscribe")
		}
		return nil
	default:
		return claim(ns, topic, who, "subscribe")
	}
}

// claim allows a party whose token's channels claim grants topic.
func claim(ns, topic string, who Who, verb string) error {
	if who.Identity.Anonymous() {
		return needToken(ns, verb)
	}
	if c, _ := who.Identity.Data.(*Claims); c.Grants(topic) {
		return nil
	}
	return forbidden(fmt.Sprintf("the token's channels claim does not grant %q", truncate(topic)))
}

func needToken(ns, verb string) error {
	return &Denial{Unauthorized: true, Reason: ReasonUnauthorized,
		Detail: fmt.Sprintf("%s needs a token to %s", nsName(ns), verb)}
}

func creatorOnly(ns string) error {
	return forbidden(fmt.Sprintf("only a topic's creator publishes to %s (POST /api/topics/NAME/notifications)", nsName(ns)))
}

func forbidden(detail string) error {
	return &Denial{Reason: ReasonForbidden + ": " + detail, Detail: detail}
}
