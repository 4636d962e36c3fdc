package transport

import "sync/atomic"

// Stats is a snapshot of a Transport's counters.
type Stats struct {
	// Peers is keyed by peer name; a peer's outbound link and inbound
	// connections are merged. A peer is listed while it has an outbound
	// link or an inbound connection; its counters start again from zero
	// after it had neither.
	Peers map[string]PeerStats `json:"peers"`
	// Refused counts the inbound connections refused since New, by
	// reason.
	Refused RefusedStats `json:"refused"`
}

// PeerStats holds the counters of one peer. Handshake frames are not
// counted; Ping frames are.
type PeerStats struct {
	// Sent counts frames written to the socket, per type, after the write
	// succeeded.
	Sent map[FrameType]uint64 `json:"sent"`
	// Received counts frames read, per type.
	Received map[FrameType]uint64 `json:"received"`
	// BytesSent and BytesReceived count whole frames, headers included,
	// as they cross the wire: sealed frames with their tag.
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	// Dropped counts frames refused by Send (queue full), lost in a batch
	// whose write failed, or still queued when the link was closed.
	Dropped uint64 `json:"dropped"`
	// Connected reports whether the outbound link is currently connected.
	Connected bool `json:"connected"`
	// Dials counts successful outbound connections (handshake included).
	Dials uint64 `json:"dials"`
}

// peerStats holds the live counters of one peer. Writers use atomics, so
// the hot path never locks; Stats converts them to maps. The sent and
// received halves are written by different goroutines and kept on
// different cache lines.
type peerStats struct {
	sent      [256]atomic.Uint64
	bytesSent atomic.Uint64
	dropped   atomic.Uint64
	dials     atomic.Uint64
	connected atomic.Bool
	_         [64]byte

	received      [256]atomic.Uint64
	bytesReceived atomic.Uint64
	_             [64]byte

	refs int // outbound link plus inbound connections; guarded by Transport.mu
}

// snapshot converts the counters into a PeerStats.
func (s *peerStats) snapshot() PeerStats {
	ps := PeerStats{
		Sent:          make(map[FrameType]uint64),
		Received:      make(map[FrameType]uint64),
		BytesSent:     s.bytesSent.Load(),
		BytesReceived: s.bytesReceived.Load(),
		Dropped:       s.dropped.Load(),
		Connected:     s.connected.Load(),
		Dials:         s.dials.Load(),
	}
	for i := range s.sent {
		if n := s.sent[i].Load(); n != 0 {
			ps.Sent[FrameType(i)] = n
		}
		if n := s.received[i].Load(); n != 0 {
			ps.Received[FrameType(i)] = n
		}
	}
	return ps
}

// acquireStats returns the counters of peer name, creating them if
// needed, and takes a reference.
func (t *Transport) acquireStats(name string) *peerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acquireStatsLocked(name)
}

func (t *Transport) acquireStatsLocked(name string) *peerStats {
	s := t.stats[name]
	if s == nil {
		s = new(peerStats)
		t.stats[name] = s
	}
	s.refs++
	return s
}

// releaseStats drops a reference taken by acquireStats and forgets the
// counters when none is left.
func (t *Transport) releaseStats(name string, s *peerStats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.refs--
	if s.refs == 0 && t.stats[name] == s {
		delete(t.stats, name)
	}
}

// Stats returns a snapshot of the counters of every known peer. It is
// safe to call concurrently with everything else.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	live := make(map[string]*peerStats, len(t.stats))
	for name, s := range t.stats {
		live[name] = s
	}
	t.mu.Unlock()
	st := Stats{Peers: make(map[string]PeerStats, len(live)), Refused: t.refused.snapshot()}
	for name, s := range live {
		st.Peers[name] = s.snapshot()
	}
	return st
}

// RefusedStats counts the inbound connections a Transport closed before
// or instead of serving them, by reason.
type RefusedStats struct {
	// MaxInbound counts connections closed at once because
	// Config.MaxInbound were open.
	MaxInbound uint64 `json:"max_inbound"`
	// PendingPerAddr counts connections closed at once because their IP
	// address had Config.MaxPendingPerAddr handshakes in progress.
	PendingPerAddr uint64 `json:"pending_per_addr"`
	// ProtectedMode counts connections refused by protected mode.
	ProtectedMode uint64 `json:"protected_mode"`
	// Handshake counts other failed handshakes: bad or missing secret,
	// certificate, cluster name or version, a timeout, garbage.
	Handshake uint64 `json:"handshake"`
	// Violations counts authenticated connections closed on a protocol
	// violation: an oversized or malformed frame, or a sealed frame that
	// does not authenticate.
	Violations uint64 `json:"violations"`
}

// refusedCounters are the live counters behind RefusedStats.
type refusedCounters struct {
	maxInbound, pendingPerAddr, protectedMode, handshake, violations atomic.Uint64
}

func (c *refusedCounters) snapshot() RefusedStats {
	return RefusedStats{
		MaxInbound:     c.maxInbound.Load(),
		PendingPerAddr: c.pendingPerAddr.Load(),
		ProtectedMode:  c.protectedMode.Load(),
		Handshake:      c.handshake.Load(),
		Violations:     c.violations.Load(),
	}
}
