package gateway

import (
	"errors"
	"net/http"
	"runtime/debug"
)

// Action is what a client asks to do with a broker topic, as
// Options.Authorize is asked about it.
type Action uint8

// The actions Options.Authorize decides on.
const (
	// ActionSubscribe is a join of a broker topic.
	ActionSubscribe Action = iota + 1
	// ActionHistory is a join that resumes from a position ({"since": seq}):
	// it reads the topic's history. It is asked after ActionSubscribe was
	// allowed.
	ActionHistory
	// ActionPublish is a client's push of a message to a joined topic.
	ActionPublish
)

// String returns "subscribe", "history" or "publish".
func (a Action) String() string {
	switch a {
	case ActionSubscribe:
		return "subscribe"
	case ActionHistory:
		return "history"
	case ActionPublish:
		return "publish"
	}
	return "unknown"
}

// Request is one question put to Options.Authorize: may this connection do
// Action on Topic?
type Request struct {
	Action   Action
	Topic    string
	Identity Identity
	// Remote is the client's address as the HTTP server saw it
	// (http.Request.RemoteAddr).
	Remote string
	// Header is the upgrade request's header; read-only.
	Header http.Header
}

// RefusalError refuses a Request with a reason the client reads in the
// error reply of its join or push: {"reason": Reason}.
type RefusalError struct {
	Reason string
}

func (e *RefusalError) Error() string { return "gateway: refused: " + e.Reason }

// Refuse returns a *RefusalError with reason.
func Refuse(reason string) error { return &RefusalError{Reason: reason} }

// refusalReason is the reason a client reads for an error from
// Options.Authorize: a *RefusalError's own, else "unauthorized".
func refusalReason(err error) string {
	var re *RefusalError
	if errors.As(err, &re) && re.Reason != "" {
		return re.Reason
	}
	return reasonUnauthorized
}

// authorize asks Options.Authorize whether the connection may do action on
// f's topic, and refuses f with the reason if not. A panic in Authorize
// refuses, and is logged.
func (c *conn) authorize(f *frame, action Action) (ok bool) {
	auth := c.h.opts.Authorize
	if auth == nil {
		return true
	}
	err := c.callAuthorize(auth, Request{Action: action, Topic: f.topic, Identity: c.identity, Remote: c.remote, Header: c.header})
	if err == nil {
		return true
	}
	reason := refusalReason(err)
	c.h.stats.denied.Add(1)
	c.h.log.Info("gateway: refused by policy", "kind", "authorize", "conn", c.id, "remote", c.remote,
		"user", c.identity.User, "action", action.String(), "topic", f.topic, "reason", reason)
	c.refuseReason(f, reason)
	return false
}

func (c *conn) callAuthorize(auth func(Request) error, req Request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.h.log.Error("gateway: Authorize panicked", "topic", req.Topic, "action", req.Action.String(), "panic", v, "stack", string(debug.Stack()))
			err = Refuse(reasonUnauthorized)
		}
	}()
	return auth(req)
}
