package cli

import (
	"context"
	"embed"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ringcast/ringcast/cmd/internal/webasset"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// Paths of the status page.
const (
	// StatusPath is the page.
	StatusPath = "/status"
	// StatusAssets is the path under which its script and style are
	// served.
	StatusAssets = "/status/"
	// StatusAPIPath is the JSON the page polls.
	StatusAPIPath = "/api/status"
)

// StatusContentSecurityPolicy is the policy of the status page's answers:
// its own scripts and styles only, no inline code, connections to its
// own origin only, no framing.
const StatusContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Bounds of the members the status remembers after they left the view.
const (
	// statusGoneTTL is how long a member that left the view is still
	// listed, as gone.
	statusGoneTTL = 10 * time.Minute
	// statusMaxGone bounds the gone members listed.
	statusMaxGone = 256
	// statusMaxAge is how often the status is computed at most: the
	// requests meanwhile share it.
	statusMaxAge = 500 * time.Millisecond
)

// StatusConfig says what the status page shows besides the node's own
// view: its HTTP listeners and whether clients are served over TLS.
type StatusConfig struct {
	// API is the node's API: the node, and the gateway, notification
	// system and guard whose counters it reports. Required.
	API *API
	// Addrs are the node's HTTP listeners by flag name ("listen",
	// "http").
	Addrs map[string]string
	// TLS reports whether clients are served over TLS (--tls-cert).
	TLS bool
}

// Status is the body of GET /api/status: the node's version and
// configuration, the members in its view (and those that left it lately),
// and its counters. Counters only grow; the page computes rates from
// successive answers.
type Status struct {
	Node    string          `json:"node"`
	Command string          `json:"command"`
	Version string          `json:"version"`
	Started time.Time       `json:"started"`
	Time    time.Time       `json:"time"`
	Config  StatusSettings  `json:"config"`
	Members []StatusMember  `json:"members"`
	Stats   StatusCounters  `json:"stats"`
	Gateway *gateway.Stats  `json:"gateway,omitempty"`
	Guard   *GuardStats     `json:"guard,omitempty"`
	Notify  any             `json:"notify,omitempty"`
	Links   map[string]Link `json:"links"`
}

// StatusSettings summarises a node's configuration. It holds no secret:
// the store's URL has its password replaced by xxxxx, and the shared
// secret is only said to be set or not.
type StatusSettings struct {
	Roles            []string          `json:"roles"`
	Cluster          string            `json:"cluster"`
	Listen           map[string]string `json:"listen"`
	Gossip           string            `json:"gossip"`
	Peer             string            `json:"peer"`
	Join             []string          `json:"join"`
	Replication      int               `json:"replication"`
	FailureDetection string            `json:"failure_detection"`
	HistorySize      int               `json:"history_size"`
	HistoryTTL       string            `json:"history_ttl"`
	MaxPayload       int               `json:"max_payload"`
	Store            string            `json:"store"`
	Durable          string            `json:"durable,omitempty"`
	ProtectedMode    bool              `json:"protected_mode"`
	TLS              bool              `json:"tls"`
	PeerTLS          bool              `json:"peer_tls"`
	Secret           bool              `json:"secret"`
	Notify           bool              `json:"notify"`
	Email            bool              `json:"email"`
}

// StatusMember is one member of the cluster as this node sees it.
type StatusMember struct {
	Name   string   `json:"name"`
	Roles  []string `json:"roles"`
	Gossip string   `json:"gossip"`
	Peer   string   `json:"peer"`
	// Share is the member's fraction of the hash ring.
	Share float64 `json:"share"`
	// State is "alive" (in this node's view) or "gone" (it left the
	// view: it left the cluster, or failed, Since then).
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Self  bool      `json:"self,omitempty"`
}

// Link is the health of this node's links with one peer.
type Link struct {
	Connected      bool   `json:"connected"`
	Dials          uint64 `json:"dials"`
	Dropped        uint64 `json:"dropped"`
	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	BytesSent      uint64 `json:"bytes_sent"`
	BytesReceived  uint64 `json:"bytes_received"`
}

// StatusCounters are the node's counters and gauges that the page shows.
type StatusCounters struct {
	Published     uint64 `json:"published"`
	Sequenced     uint64 `json:"sequenced"`
	Forwarded     uint64 `json:"forwarded"`
	Delivered     uint64 `json:"delivered"`
	Replicated    uint64 `json:"replicated"`
	Dropped       uint64 `json:"dropped"`
	SlowConsumers uint64 `json:"slow_consumers"`
	Gaps          uint64 `json:"gaps"`
	Lost          uint64 `json:"lost"`
	Handoffs      uint64 `json:"handoffs"`
	Failovers     uint64 `json:"failovers"`
	SendErrors    uint64 `json:"send_errors"`
	BadFrames     uint64 `json:"bad_frames"`
	StoreCommits  uint64 `json:"store_committed"`
	StoreErrors   uint64 `json:"store_errors"`
	OwnedTopics   int    `json:"owned_topics"`
	ReplicaTopics int    `json:"replica_topics"`
	LocalTopics   int    `json:"local_topics"`
	Subscriptions int    `json:"subscriptions"`
}

// statusHandler serves the page and GET /api/status.
type statusHandler struct {
	api      *API
	settings StatusSettings
	command  string
	version  string
	started  time.Time

	mu      sync.Mutex
	members map[string]*seenMember // every member seen, alive or gone lately
	at      time.Time              // when last was computed
	last    Status
}

// seenMember is what the status remembers of a member.
type seenMember struct {
	m     pubsub.Member
	share float64
	alive bool
	since time.Time // joined the view, or left it
}

// RegisterStatus adds the status page to mux: GET /status (the page, its
// script and style under /status/) and GET /api/status (JSON, Status).
// The page polls /api/status every second and draws the members, the ring
// and the counters, without a reload.
func (e *Env) RegisterStatus(mux *http.ServeMux, cfg StatusConfig) {
	c := &e.cmd.Common
	settings := StatusSettings{
		Cluster:          c.Cluster,
		Listen:           cloneMap(cfg.Addrs),
		Gossip:           cfg.API.node.GossipAddr(),
		Peer:             cfg.API.node.PeerAddr(),
		Join:             append([]string{}, c.Join...),
		Replication:      c.Replication,
		FailureDetection: c.FailureDetection,
		HistorySize:      c.HistorySize,
		HistoryTTL:       c.HistoryTTL.String(),
		MaxPayload:       c.MaxPayload,
		Store:            e.storeDesc,
		ProtectedMode:    c.ProtectedMode,
		TLS:              cfg.TLS,
		PeerTLS:          c.PeerTLS.CA != "" || c.PeerTLS.Cert != "",
		Secret:           c.Secret != "",
		Notify:           cfg.API.cfg.Notify != nil,
		Email:            e.cmd.notify != nil && e.cmd.notify.SMTP != "" && cfg.API.cfg.Notify != nil,
	}
	if e.store != nil {
		settings.Durable = pubsub.FormatDurability(c.Durable)
	}
	h := newStatusHandler(cfg.API, settings, e.cmd.name)
	mux.HandleFunc("GET "+StatusPath, serveStatusAsset)
	mux.HandleFunc("GET "+StatusAssets, serveStatusAsset)
	mux.HandleFunc(StatusAPIPath, h.serveJSON)
}

func newStatusHandler(api *API, settings StatusSettings, command string) *statusHandler {
	return &statusHandler{
		api:      api,
		settings: settings,
		command:  command,
		version:  buildVersion(),
		started:  time.Now(),
		members:  make(map[string]*seenMember),
	}
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// buildVersion describes the binary: its module version, VCS revision and
// Go version, as the build recorded them.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + modified
	}
	return v + " " + bi.GoVersion
}

func (h *statusHandler) serveJSON(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, h.status(r.Context()))
}

// status returns the status, computed at most once per statusMaxAge. The
// counters are read without the lock (the notification system's are a
// database query); only the members' record is updated under it.
func (h *statusHandler) status(ctx context.Context) Status {
	h.mu.Lock()
	if !h.at.IsZero() && time.Since(h.at) < statusMaxAge {
		s := h.last
		h.mu.Unlock()
		return s
	}
	h.mu.Unlock()

	node := h.api.node
	st := node.Stats()
	s := Status{
		Node:    node.Name(),
		Command: h.command,
		Version: h.version,
		Started: h.started.UTC(),
		Config:  h.settings,
		Stats: StatusCounters{
			Published: st.Published, Sequenced: st.Sequenced, Forwarded: st.Forwarded, Delivered: st.Delivered,
			Replicated: st.Replicated, Dropped: st.Dropped, SlowConsumers: st.SlowConsumers, Gaps: st.Gaps, Lost: st.Lost,
			Handoffs: st.Handoffs, Failovers: st.Failovers, SendErrors: st.SendErrors, BadFrames: st.BadFrames,
			StoreCommits: st.Store.Committed, StoreErrors: st.Store.Errors,
			OwnedTopics: st.OwnedTopics, ReplicaTopics: st.ReplicaTopics, LocalTopics: st.LocalTopics, Subscriptions: st.Subscriptions,
		},
		Links: make(map[string]Link, len(st.Links.Peers)),
	}
	for name, p := range st.Links.Peers {
		l := Link{Connected: p.Connected, Dials: p.Dials, Dropped: p.Dropped, BytesSent: p.BytesSent, BytesReceived: p.BytesReceived}
		for _, n := range p.Sent {
			l.FramesSent += n
		}
		for _, n := range p.Received {
			l.FramesReceived += n
		}
		s.Links[name] = l
	}
	cfg := h.api.cfg
	if cfg.Gateway != nil {
		gs := cfg.Gateway.Stats()
		s.Gateway = &gs
	}
	if cfg.Guard != nil {
		gs := cfg.Guard()
		s.Guard = &gs
	}
	if cfg.Notify != nil {
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		s.Notify = cfg.Notify(ctx)
		cancel()
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	s.Time = now.UTC()
	s.Members = h.updateMembers(node, now)
	s.Config.Roles = []string{}
	for _, m := range s.Members {
		if m.Self {
			s.Config.Roles = m.Roles
		}
	}
	h.at, h.last = now, s
	return s
}

// updateMembers records the node's view at now and returns the members
// alive and those gone within statusGoneTTL (at most statusMaxGone of
// them, the latest), alive first, each group by name.
func (h *statusHandler) updateMembers(node *pubsub.Node, now time.Time) []StatusMember {
	self := node.Name()
	view := node.Members()
	alive := make(map[string]bool, len(view))
	for _, m := range view {
		alive[m.Name] = true
		sm := h.members[m.Name]
		if sm == nil || !sm.alive {
			sm = &seenMember{alive: true, since: now}
			h.members[m.Name] = sm
		}
		sm.m, sm.share = m, node.RingShare(m.Name)
	}
	var gone []*seenMember
	for name, sm := range h.members {
		if alive[name] {
			continue
		}
		if sm.alive {
			sm.alive, sm.since, sm.share = false, now, 0
		}
		if now.Sub(sm.since) > statusGoneTTL {
			delete(h.members, name)
			continue
		}
		gone = append(gone, sm)
	}
	if len(gone) > statusMaxGone {
		slices.SortFunc(gone, func(a, b *seenMember) int { return b.since.Compare(a.since) })
		for _, sm := range gone[statusMaxGone:] {
			delete(h.members, sm.m.Name)
		}
		gone = gone[:statusMaxGone]
	}
	out := make([]StatusMember, 0, len(view)+len(gone))
	add := func(sm *seenMember) {
		roles := sm.m.Roles
		if roles == nil {
			roles = []string{}
		}
		state := "alive"
		if !sm.alive {
			state = "gone"
		}
		out = append(out, StatusMember{
			Name: sm.m.Name, Roles: roles, Gossip: sm.m.GossipAddr, Peer: sm.m.PeerAddr,
			Share: sm.share, State: state, Since: sm.since.UTC(), Self: sm.m.Name == self,
		})
	}
	for _, m := range view {
		add(h.members[m.Name])
	}
	slices.SortFunc(out, func(a, b StatusMember) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(gone, func(a, b *seenMember) int { return strings.Compare(a.m.Name, b.m.Name) })
	for _, sm := range gone {
		add(sm)
	}
	return out
}

//go:embed status
var statusFS embed.FS

// statusFiles are the page's files by their path; StatusPath is the page.
var statusFiles = loadStatusFiles()

func loadStatusFiles() map[string]*webasset.Asset {
	files, err := webasset.Load(statusFS, "status")
	if err != nil {
		panic("cli: embedded status page: " + err.Error())
	}
	out := make(map[string]*webasset.Asset, len(files))
	for name, a := range files {
		p := StatusAssets + name
		if name == "index.html" {
			p = StatusPath
		}
		out[p] = a
	}
	return out
}

// serveStatusAsset answers GET /status and its files, with
// StatusContentSecurityPolicy and an ETag.
func serveStatusAsset(w http.ResponseWriter, r *http.Request) {
	f := statusFiles[r.URL.Path]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	f.Serve(w, r, StatusContentSecurityPolicy)
}
