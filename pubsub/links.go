package pubsub

import (
	"fmt"
	"strings"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/transport"
)

// Frame is the type of a frame between two nodes, the key of the per-peer
// frame counts in LinkStats. Its text form is its name ("Deliver"), or
// "FrameType(n)" for a type this version does not know, so that the
// counts read well as JSON.
type Frame uint8

// Frame types counted in LinkStats: the link's keepalive, and one per
// message between nodes.
const (
	FramePing           = Frame(transport.FramePing)      // link keepalive
	FramePublish        = Frame(wire.FramePublish)        // a publish on its way to the topic's owner
	FramePublishAck     = Frame(wire.FramePublishAck)     // the owner's answer to a publish
	FrameDeliver        = Frame(wire.FrameDeliver)        // a message for a node's subscribers
	FrameReplicaDeliver = Frame(wire.FrameReplicaDeliver) // a message for a replica that has subscribers
	FrameSubscribe      = Frame(wire.FrameSubscribe)      // a node's interest in a topic
	FrameSubscribeAck   = Frame(wire.FrameSubscribeAck)   // the owner's answer to a subscribe
	FrameUnsubscribe    = Frame(wire.FrameUnsubscribe)    // a node's loss of interest in a topic
	FrameStateRequest   = Frame(wire.FrameStateRequest)   // a new owner's claim of a topic
	FrameState          = Frame(wire.FrameState)          // the answer to a claim
	FrameHandoff        = Frame(wire.FrameHandoff)        // a topic pushed to its new owner
	FrameStateAck       = Frame(wire.FrameStateAck)       // the answer to a hand-off
	FrameReplicaNodes   = Frame(wire.FrameReplicaNodes)   // a topic's subscriber nodes, for a replica
	FrameReplicate      = Frame(wire.FrameReplicate)      // a message for a replica
	FrameReplicateAck   = Frame(wire.FrameReplicateAck)   // a replica's answer
	FrameHistoryRequest = Frame(wire.FrameHistoryRequest) // a request for retained messages
	FrameHistory        = Frame(wire.FrameHistory)        // the answer to a history request
	FrameTopicsRequest  = Frame(wire.FrameTopicsRequest)  // a topic listing, asked of a member
	FrameTopics         = Frame(wire.FrameTopics)         // a member's owned topics
)

// String returns the frame type's name.
func (f Frame) String() string {
	if name := wire.Name(transport.FrameType(f)); name != "" {
		return name
	}
	return transport.FrameType(f).String()
}

// MarshalText returns the frame type's name (String).
func (f Frame) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText parses what MarshalText returns.
func (f *Frame) UnmarshalText(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, "FrameType(") {
		var t transport.FrameType
		if err := t.UnmarshalText(b); err != nil {
			return fmt.Errorf("pubsub: %w", err)
		}
		*f = Frame(t)
		return nil
	}
	for i := range 256 {
		if Frame(i).String() == s {
			*f = Frame(i)
			return nil
		}
	}
	return fmt.Errorf("pubsub: unknown frame type %q", s)
}

// LinkStats holds the counters of a node's links to its peers.
type LinkStats struct {
	// Peers is keyed by peer name; a peer's outbound link and inbound
	// connections are merged. A peer is listed while it has an outbound
	// link or an inbound connection; its counters start again from zero
	// after it had neither.
	Peers map[string]PeerLinkStats `json:"peers"`
	// Refused counts the inbound peer connections the node refused since
	// it started, by reason.
	Refused RefusedStats `json:"refused"`
}

// RefusedStats counts the inbound peer connections a node closed before
// or instead of serving them, by reason (see transport.RefusedStats).
type RefusedStats = transport.RefusedStats

// PeerLinkStats holds the counters of the links with one peer. Handshake
// frames are not counted; Ping frames are.
type PeerLinkStats struct {
	// Sent counts frames written to the socket, per type, after the write
	// succeeded.
	Sent map[Frame]uint64 `json:"sent"`
	// Received counts frames read, per type.
	Received map[Frame]uint64 `json:"received"`
	// BytesSent and BytesReceived count whole frames, headers included.
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	// Dropped counts frames refused because the link's queue was full,
	// lost in a batch whose write failed, or still queued when the link
	// was closed.
	Dropped uint64 `json:"dropped"`
	// Connected reports whether the outbound link is currently connected.
	Connected bool `json:"connected"`
	// Dials counts successful outbound connections.
	Dials uint64 `json:"dials"`
}

// linkStats converts the transport's counters.
func linkStats(s transport.Stats) LinkStats {
	ls := LinkStats{Peers: make(map[string]PeerLinkStats, len(s.Peers)), Refused: s.Refused}
	for name, p := range s.Peers {
		ls.Peers[name] = PeerLinkStats{
			Sent:          frameCounts(p.Sent),
			Received:      frameCounts(p.Received),
			BytesSent:     p.BytesSent,
			BytesReceived: p.BytesReceived,
			Dropped:       p.Dropped,
			Connected:     p.Connected,
			Dials:         p.Dials,
		}
	}
	return ls
}

func frameCounts(m map[transport.FrameType]uint64) map[Frame]uint64 {
	out := make(map[Frame]uint64, len(m))
	for t, n := range m {
		out[Frame(t)] = n
	}
	return out
}
