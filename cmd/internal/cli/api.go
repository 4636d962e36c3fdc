package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/cmd/internal/access"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// DefaultEvent is the event of a message published with POST /api/publish
// without an event parameter: clients receive [jr, null, topic, "message", body].
const DefaultEvent = "message"

// DefaultAPITimeout bounds each API request: reading a body, and the round
// trip to a topic's owner.
const DefaultAPITimeout = 10 * time.Second

// Acknowledgements of POST /api/publish (the ack parameter).
const (
	// AckNone answers as soon as the message is on its way to the topic's
	// owner, with no sequence number (pubsub.AckNone).
	AckNone = "none"
	// AckOwner answers once the owner has sequenced the message
	// (pubsub.AckOwner). The default.
	AckOwner = "owner"
	// AckReplicated answers once the owner and its replicas hold the
	// message, so that it survives the loss of any one node
	// (pubsub.AckReplicated).
	AckReplicated = "replicated"
)

// parseAck maps the ack parameter to the node's acknowledgement level.
func parseAck(s string) (pubsub.Ack, error) {
	switch s {
	case AckNone:
		return pubsub.AckNone, nil
	case AckOwner:
		return pubsub.AckOwner, nil
	case AckReplicated:
		return pubsub.AckReplicated, nil
	}
	return 0, fmt.Errorf("invalid ack %q: want %s, %s or %s", s, AckNone, AckOwner, AckReplicated)
}

// reservedEventPrefix starts Phoenix lifecycle events, which clients would
// misread.
const reservedEventPrefix = "phx_"

// APIConfig configures an API. Zero fields take their defaults.
type APIConfig struct {
	// Publish enables POST /api/publish.
	Publish bool
	// Gateway, when set, adds its counters to GET /api/stats.
	Gateway *gateway.Handler
	// MaxPayload is the node's Config.MaxPayload: the bound of the message
	// published, envelope included. Default pubsub.DefaultMaxPayload.
	MaxPayload int
	// Timeout bounds each request. Default DefaultAPITimeout.
	Timeout time.Duration
	// Reserved are topic prefixes POST /api/publish refuses with 403:
	// the notification system's topics, which only it publishes to.
	Reserved []string
	// Notify, when set, adds the notification system's counters to GET
	// /api/stats under "notify". It also says that the notification
	// system is mounted and serves GET /api/topics (a user's notification
	// topics): the cluster's topic listing is then at /api/cluster/topics
	// only.
	Notify func(ctx context.Context) any
	// Guard, when set, adds the counters of the Guard in front of the
	// listener to GET /api/stats under "guard".
	Guard func() GuardStats
	// DenyAnonymous makes POST /api/publish require a bearer token that
	// Authenticate accepts (401 otherwise): --anonymous=false. Without
	// Authenticate no token can be checked, and every publish is refused.
	DenyAnonymous bool
	Authenticate  func(ctx context.Context, token string) (user string, err error)
	// Authorize, when set, decides every POST /api/publish instead of
	// DenyAnonymous and Authenticate, from the request's credentials and
	// the topic (Access.AuthorizePublish). An *access.Denial refuses with
	// 401 (Unauthorized) or 403; any other error with 401.
	Authorize func(r *http.Request, topic string) error
	// Operator, when set, decides the requests that list the cluster's
	// topics (GET /api/cluster/topics, and GET /api/topics where it lists
	// them), which name every topic: an error refuses as Authorize's do
	// (Access.AuthorizeOperator wants an API key once one is configured).
	Operator func(r *http.Request) error
	// Logger receives the API's logs; nil discards them.
	Logger *slog.Logger
}

// API is the HTTP API of a ringcast binary. It is safe for concurrent use.
//
//   - GET /healthz: 200 "ok" while serving; 503 with the reason once
//     shutting down, or while no member in this node's view has the topics
//     role (publishes and subscriptions would fail).
//   - GET /api/cluster: {"node": name, "members": [{"name", "roles", "gossip", "peer", "share"}]},
//     share being the member's fraction of the hash ring.
//   - GET /api/topics/{topic}: {"topic", "owner", "epoch", "seq"} from the topic's owner.
//   - GET /api/cluster/topics?prefix=P&limit=N&cursor=C (with an API key
//     when APIConfig.Operator wants one): a page of the cluster's topics
//     in name order, every member with the topics role
//     answering for the topics it owns (pubsub.Node.Topics):
//     {"topics": [{"topic", "owner", "epoch", "seq", "subscriber_nodes",
//     "retained", "durable", "claiming"}], "next": C, "partial": bool,
//     "missing": [member]}. limit is 1 to pubsub.MaxTopicLimit (default
//     pubsub.DefaultTopicLimit); pass "next" as cursor, with the same
//     prefix, for the following page ("next" is absent on the last).
//     "partial" is true, and "missing" names the members, when some member
//     did not answer in time: the page lacks their topics. The same
//     listing is served at GET /api/topics unless the notification system
//     is mounted (APIConfig.Notify), which owns that path.
//   - GET /api/stats: the node's counters and gauges (pubsub.Stats, with its
//     links to each peer), and the gateway's under "gateway" (gateway.Stats)
//     when APIConfig.Gateway is set. Frame counts per peer are keyed by frame
//     name ("Deliver", ...) and leave out zeros; a peer's counters start
//     from zero again after it had no link for a while. The snapshot visits
//     every topic the node holds, so it is taken at most once per
//     statsMaxAge and shared by the requests meanwhile.
//   - POST /api/publish?topic=T[&event=E][&ack=A] with a JSON body (if
//     enabled): publishes the body under event E (default "message") to
//     every client joined to T on every gateway. The acknowledgement A is
//     one of the Ack constants. With owner (the default) and replicated it
//     answers 200 {"topic": T, "seq": N, "epoch": "E"} once the topic's owner
//     (owner) or the owner and its replicas (replicated) hold the message;
//     the epoch is a decimal string, as it may exceed the integers
//     JavaScript holds exactly. With none it answers 202 {"topic": T} once
//     the message is on its way to the owner.
//
// Errors are {"error": "..."}: 400 for a bad topic, event, ack or body (not
// JSON), 413 for a body larger than the node's MaxPayload allows, 405 for a wrong method,
// 503 when no member owns topics or the owner or its replicas cannot be
// reached, 504 when they do not answer in time. A publish that failed with
// 503 or 504 may still have been delivered: retrying it can deliver it twice.
type API struct {
	node     *pubsub.Node
	cfg      APIConfig
	log      *slog.Logger
	draining atomic.Bool

	statsMu sync.Mutex
	statsAt time.Time // when statsOf was taken
	statsOf NodeStats
}

// statsMaxAge bounds how often GET /api/stats takes a snapshot.
const statsMaxAge = time.Second

// NewAPI returns the API of node. cfg is copied.
func NewAPI(node *pubsub.Node, cfg APIConfig) *API {
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = pubsub.DefaultMaxPayload
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAPITimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{node: node, cfg: cfg, log: cfg.Logger}
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", a.healthz)
	mux.HandleFunc("/api/cluster", a.cluster)
	mux.HandleFunc("/api/topics/{topic...}", a.topic)
	mux.HandleFunc("/api/cluster/topics", a.listTopics)
	if a.cfg.Notify == nil {
		mux.HandleFunc("/api/topics", a.listTopics)
	}
	mux.HandleFunc("/api/stats", a.stats)
	if a.cfg.Publish {
		mux.HandleFunc("/api/publish", a.publish)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
}

// SetDraining makes /healthz answer 503 from now on.
func (a *API) SetDraining() { a.draining.Store(true) }

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "shutting down\n")
		return
	}
	if !a.topicsServed() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "no member owns topics\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// topicsServed reports whether a member with the topics role is in the
// node's view: without one, no topic has an owner.
func (a *API) topicsServed() bool {
	for _, m := range a.node.Members() {
		if m.HasRole(pubsub.RoleTopics) {
			return true
		}
	}
	return false
}

// ClusterMember is one member in GET /api/cluster.
type ClusterMember struct {
	Name   string   `json:"name"`
	Roles  []string `json:"roles"`
	Gossip string   `json:"gossip"`
	Peer   string   `json:"peer"`
	Share  float64  `json:"share"`
}

// ClusterInfo is the body of GET /api/cluster.
type ClusterInfo struct {
	Node    string          `json:"node"`
	Members []ClusterMember `json:"members"`
}

func (a *API) cluster(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	ms := a.node.Members()
	out := ClusterInfo{Node: a.node.Name(), Members: make([]ClusterMember, 0, len(ms))}
	for _, m := range ms {
		roles := m.Roles
		if roles == nil {
			roles = []string{}
		}
		out.Members = append(out.Members, ClusterMember{
			Name:   m.Name,
			Roles:  roles,
			Gossip: m.GossipAddr,
			Peer:   m.PeerAddr,
			Share:  a.node.RingShare(m.Name),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// NodeStats is the body of GET /api/stats.
type NodeStats struct {
	pubsub.Stats
	Gateway *gateway.Stats `json:"gateway,omitempty"`
	Notify  any            `json:"notify,omitempty"`
	Guard   *GuardStats    `json:"guard,omitempty"`
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	a.statsMu.Lock()
	if time.Since(a.statsAt) >= statsMaxAge {
		a.statsOf = NodeStats{Stats: a.node.Stats()}
		if a.cfg.Gateway != nil {
			gs := a.cfg.Gateway.Stats()
			a.statsOf.Gateway = &gs
		}
		if a.cfg.Notify != nil {
			ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
			a.statsOf.Notify = a.cfg.Notify(ctx)
			cancel()
		}
		if a.cfg.Guard != nil {
			gs := a.cfg.Guard()
			a.statsOf.Guard = &gs
		}
		a.statsAt = time.Now()
	}
	out := a.statsOf
	a.statsMu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// authenticated reports whether r carries a bearer token that
// APIConfig.Authenticate accepts, and answers 401 when it does not.
func (a *API) authenticated(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && a.cfg.Authenticate != nil {
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		_, err := a.cfg.Authenticate(ctx, strings.TrimSpace(token))
		cancel()
		if err == nil {
			return true
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="ringcast"`)
	writeError(w, http.StatusUnauthorized, "anonymous publishing is off (--anonymous=false): send Authorization: Bearer TOKEN")
	return false
}

// refuse answers a request APIConfig.Authorize or Operator refused: 503
// (Retry-After) when the token cannot be checked now, 403 for a
// forbidden *access.Denial, 401 for anything else.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, topic string, err error) {
	if errors.Is(err, gateway.ErrUnavailable) {
		a.log.Warn("request refused: the token cannot be checked now", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the token cannot be checked now; try again")
		return
	}
	if d, ok := errors.AsType[*access.Denial](err); ok && !d.Unauthorized {
		writeError(w, http.StatusForbidden, d.Error())
		return
	}
	a.log.Debug("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "topic", topic, "err", err)
	w.Header().Set("WWW-Authenticate", `Bearer realm="ringcast"`)
	writeError(w, http.StatusUnauthorized, err.Error())
}

// TopicState is the body of GET /api/topics/{topic}.
type TopicState struct {
	Topic string `json:"topic"`
	Owner string `json:"owner"`
	Epoch uint64 `json:"epoch,string"` // a string: JavaScript cannot hold it exactly
	Seq   uint64 `json:"seq"`
}

func (a *API) topic(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	topic := r.PathValue("topic")
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	info, err := a.node.TopicInfo(ctx, topic)
	if err != nil {
		a.fail(w, r, topic, err)
		return
	}
	writeJSON(w, http.StatusOK, TopicState{Topic: info.Topic, Owner: info.Owner, Epoch: info.Epoch, Seq: info.Seq})
}

// listTopics serves GET /api/cluster/topics (and GET /api/topics).
func (a *API) listTopics(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	if a.cfg.Operator != nil {
		if err := a.cfg.Operator(r); err != nil {
			a.refuse(w, r, "", err)
			return
		}
	}
	q, err := parseTopicQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	page, err := a.node.Topics(ctx, q)
	if err != nil {
		a.fail(w, r, "", err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// parseTopicQuery reads the parameters of a topic listing.
func parseTopicQuery(r *http.Request) (pubsub.TopicQuery, error) {
	v := r.URL.Query()
	q := pubsub.TopicQuery{Prefix: v.Get("prefix"), Cursor: v.Get("cursor")}
	if len(q.Prefix) > pubsub.MaxTopicLen {
		return q, fmt.Errorf("prefix longer than %d bytes", pubsub.MaxTopicLen)
	}
	if v.Has("limit") {
		n, err := strconv.Atoi(v.Get("limit"))
		if err != nil || n < 1 || n > pubsub.MaxTopicLimit {
			return q, fmt.Errorf("invalid limit %.20q: want an integer from 1 to %d", v.Get("limit"), pubsub.MaxTopicLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// Published is the body of a successful POST /api/publish. Seq and Epoch
// place the message in the topic's order; both are left out with ack=none.
// Epoch is encoded as a decimal string.
type Published struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq,omitempty"`
	Epoch uint64 `json:"epoch,omitempty,string"`
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	if a.cfg.Authorize == nil && a.cfg.DenyAnonymous && !a.authenticated(w, r) {
		return
	}
	q := r.URL.Query()
	topic := q.Get("topic")
	if err := pubsub.ValidateTopic(topic); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if a.cfg.Authorize != nil {
		if err := a.cfg.Authorize(r, topic); err != nil {
			a.refuse(w, r, topic, err)
			return
		}
	}
	for _, p := range a.cfg.Reserved {
		if strings.HasPrefix(topic, p) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("topic %q is reserved: topics starting with %q belong to the notification system (POST /api/topics/NAME/notifications)", topic, p))
			return
		}
	}
	event := DefaultEvent
	if q.Has("event") {
		event = q.Get("event")
	}
	if err := gateway.ValidateEvent(event); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if strings.HasPrefix(event, reservedEventPrefix) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("event %q is reserved: events starting with %q are Phoenix's own", event, reservedEventPrefix))
		return
	}
	ack := pubsub.AckOwner
	if q.Has("ack") {
		var err error
		if ack, err = parseAck(q.Get("ack")); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	// The envelope (2 bytes and the event) counts against the node's limit.
	limit := int64(a.cfg.MaxPayload - len(gateway.EncodeEnvelope(event, nil, false)))
	tooLarge := fmt.Sprintf("%v: body larger than %d bytes", pubsub.ErrPayloadTooLarge, limit)
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.cfg.Timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
		} else {
			writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		}
		return
	}
	body = bytes.TrimSpace(body)
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "body is not valid JSON")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	res, err := a.node.Publish(ctx, topic, gateway.EncodeEnvelope(event, body, false), pubsub.WithAck(ack))
	if err != nil {
		a.fail(w, r, topic, err)
		return
	}
	if ack == pubsub.AckNone {
		writeJSON(w, http.StatusAccepted, Published{Topic: topic})
		return
	}
	writeJSON(w, http.StatusOK, Published{Topic: topic, Seq: res.Seq, Epoch: res.Epoch})
}

// fail answers a node error with the status that fits it.
func (a *API) fail(w http.ResponseWriter, r *http.Request, topic string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, pubsub.ErrInvalidTopic), errors.Is(err, pubsub.ErrInvalidQuery):
		status = http.StatusBadRequest
	case errors.Is(err, pubsub.ErrPayloadTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, pubsub.ErrNoOwner), errors.Is(err, pubsub.ErrUnavailable), errors.Is(err, pubsub.ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return // the client went away
	}
	if status >= 500 {
		a.log.Warn("api request failed", "path", r.URL.Path, "topic", topic, "status", status, "err", err)
	}
	writeError(w, status, err.Error())
}

// allow answers 405 unless r uses method (GET allows HEAD too).
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || method == http.MethodGet && r.Method == http.MethodHead {
		return true
	}
	allowed := method
	if method == http.MethodGet {
		allowed = "GET, HEAD"
	}
	w.Header().Set("Allow", allowed)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, method))
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"encoding the response failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}
