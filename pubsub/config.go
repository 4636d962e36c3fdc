package pubsub

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/ring"
)

// Roles a node can advertise. A node with RoleTopics is on the hash ring
// and owns a share of the topics; a node with only RoleGateway subscribes and
// publishes but owns nothing.
const (
	RoleTopics  = ring.RoleTopics
	RoleGateway = ring.RoleGateway
)

// Member is one node of the cluster as this node sees it.
type Member = ring.Member

// Overflow policies for a subscription whose buffer is full.
type Overflow uint8

const (
	// OverflowClose ends the subscription with ErrSlowConsumer (the default):
	// a subscriber that cannot keep up is told so instead of silently
	// missing messages.
	OverflowClose Overflow = iota
	// OverflowDropOldest discards the oldest buffered message to make room.
	// The next message returned carries the number discarded in Message.Lost.
	OverflowDropOldest
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxPayload         = 1 << 20
	DefaultSubscriptionBuffer = 1024
	DefaultHistorySize        = 256
	DefaultHistoryTTL         = 5 * time.Minute
	DefaultIdleTopicTTL       = 5 * time.Minute
	DefaultRequestTimeout     = 5 * time.Second
	DefaultClaimTimeout       = 2 * time.Second
	DefaultQueueAckTimeout    = 30 * time.Second
	DefaultGapTimeout         = 500 * time.Millisecond
	DefaultReplicationFactor  = 2
	DefaultStoreTimeout       = 5 * time.Second
)

// GossipConfig tunes membership gossip, failure detection, joining and
// healing. Zero fields keep memberlist's LAN defaults, which detect a dead
// node in a few seconds, and ring's defaults for joining and healing.
type GossipConfig = ring.Timings

// FastGossip returns timings for loopback clusters and tests: a node that
// stops without leaving is declared dead in well under two seconds. They
// cost more gossip traffic than the defaults and are not meant for WANs.
// They are ring.FastTimings().
func FastGossip() GossipConfig { return ring.FastTimings() }

// Config configures a Node. The zero value is valid: it runs a standalone
// node that owns topics, with gossip and peer links on 127.0.0.1 and ports
// chosen by the system. New copies the Config; it is never modified.
type Config struct {
	// NodeName identifies the node in the cluster; it must be unique.
	// Default: the host name plus a random suffix.
	NodeName string

	// ClusterName keeps clusters apart: gossip and peer links of another
	// cluster are refused. Default ring.DefaultClusterName ("ringcast").
	ClusterName string

	// GossipAddr is the membership gossip address, "host:port". Port 0 picks
	// a free port; GossipAddr() reports the one chosen. Default "127.0.0.1:0".
	GossipAddr string

	// PeerAddr is the node-to-node link address, "host:port", with the same
	// rules. Default "127.0.0.1:0".
	PeerAddr string

	// Seeds are gossip addresses ("host:port") of members to join at start.
	// A host may be a DNS name: it is resolved on every attempt, to all its
	// addresses (a Kubernetes headless service, for example). New tries them
	// once and, if none answers, keeps trying in the background with a
	// growing wait (Gossip.JoinRetryMin to Gossip.JoinRetryMax) until one
	// does; Node.Joined tells whether it has. Once joined, the node rejoins
	// the seeds that are not alive members, and the members it lost to
	// failure, every Gossip.ReconnectInterval, so a restarted seed or the
	// two sides of a healed network partition merge back into one cluster.
	Seeds []string

	// Roles the node advertises. Default: RoleTopics only. A node without
	// RoleTopics owns no topics.
	Roles []string

	// Secret, when set, must be the same on every node: it authenticates
	// peer links (HMAC handshake) and encrypts their frames (AES-256-GCM),
	// and encrypts and authenticates gossip, each with keys derived from
	// it. Nodes without it are refused.
	Secret []byte

	// PeerTLS, when set, protects peer links with mutual TLS instead of
	// the Secret's encryption (see transport.Config.TLS: client
	// certificates required and verified). It does not cover gossip,
	// which only the Secret encrypts.
	PeerTLS *tls.Config

	// InsecureAllowRemotePeers turns protected mode off. Without a Secret
	// (and, for peer links, without PeerTLS), a node accepts peer links
	// and gossip from loopback addresses only, and refuses remote ones
	// with a logged error saying how to fix it: anyone who could reach its
	// ports could otherwise join the cluster, own topics and read every
	// message. Set it only on a network where every host is trusted.
	InsecureAllowRemotePeers bool

	// MaxPayload bounds the size of a published message. Default 1 MiB.
	MaxPayload int

	// SubscriptionBuffer is the number of messages a subscription buffers
	// before its overflow policy applies. Default 1024.
	SubscriptionBuffer int

	// HistorySize is the number of recent messages an owner keeps per topic
	// (for hand-off and recovery); HistoryTTL drops older ones. Defaults 256
	// and 5 minutes; a negative value turns the bound off (HistorySize < 0
	// keeps no history).
	HistorySize int
	HistoryTTL  time.Duration

	// IdleTopicTTL is how long a topic's owner and replicas keep its state
	// once there is nothing left to keep: no subscriber node, no message in
	// history, and no publish or subscription for that long. Without it a
	// node would hold every topic ever used. A forgotten topic that is used
	// again starts a new epoch. Default 5 minutes; negative keeps every
	// topic for the node's lifetime.
	IdleTopicTTL time.Duration

	// ReplicationFactor is the number of copies of each topic's sequence and
	// history: the owner plus the next ReplicationFactor-1 members on the
	// ring. Default 2; 1 turns replication off (the state of a failed owner
	// is then lost and its topics start a new epoch).
	ReplicationFactor int

	// Workers is the number of goroutines that run handlers of
	// SubscribeFunc subscriptions. Default GOMAXPROCS.
	Workers int

	// RequestTimeout bounds internal requests between nodes that are not
	// governed by a caller's context. Default 5s.
	RequestTimeout time.Duration

	// ClaimTimeout bounds how long a new owner waits for a topic's state
	// from its previous owner before starting it afresh (with a new epoch).
	// Default 2s.
	ClaimTimeout time.Duration

	// GapTimeout is how long a node holds messages that arrived after a gap
	// in a topic's sequence, waiting for the missing ones, before it
	// delivers what it has. Default 500ms.
	GapTimeout time.Duration

	// QueueAckTimeout is how long the owner of a durable topic waits for a
	// queue group member to acknowledge a message before it delivers the
	// message again, to another member when the group has one. Default
	// 30s.
	QueueAckTimeout time.Duration

	// Gossip tunes failure detection; zero keeps memberlist's LAN defaults.
	Gossip GossipConfig

	// Store, when set, keeps durable topics (see Durability) in a database:
	// their owner commits each message there before it acknowledges or
	// delivers it, sequence numbers come from the store, and a topic goes
	// on where it was after a failover or a restart of the whole cluster.
	// Every node of a cluster must use the same database and the same
	// Durability rules. The node does not close the Store. Nil: every topic
	// lives in memory.
	Store Store

	// Durability says which topics are kept in Store, and for how long.
	// Nil with a Store: every topic is durable and kept forever.
	Durability []Durability

	// StoreTimeout bounds one call to the Store. Default 5s.
	StoreTimeout time.Duration

	// Presence says which topics track presence (Track, WithPresence,
	// Presence, WatchPresence), with their bounds. Every node of a
	// cluster must have the same rules. Nil: presence is off.
	Presence []PresenceRule

	// Logger receives the node's logs, its peer links' and its
	// membership's (memberlist's lines included). Nil discards them. The
	// node samples them: of the lines with one level, message and "kind"
	// attribute, the first 3 of each 10 seconds are logged and the rest
	// counted, and the next one logged says how many were dropped. A port
	// scan of the peer port, garbage sent to the gossip port or a peer
	// sending malformed frames is a few lines, not one per connection,
	// packet or frame. Every line carries the node's name once, as the
	// attribute "node": give a Logger that does not add it already.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		c.NodeName = ring.NewNodeName()
	}
	if c.ClusterName == "" {
		c.ClusterName = ring.DefaultClusterName
	}
	if c.GossipAddr == "" {
		c.GossipAddr = "127.0.0.1:0"
	}
	if c.PeerAddr == "" {
		c.PeerAddr = "127.0.0.1:0"
	}
	if c.Roles == nil {
		c.Roles = []string{RoleTopics}
	}
	c.Roles = append([]string(nil), c.Roles...)
	c.Seeds = append([]string(nil), c.Seeds...)
	c.Secret = append([]byte(nil), c.Secret...)
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.SubscriptionBuffer == 0 {
		c.SubscriptionBuffer = DefaultSubscriptionBuffer
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.IdleTopicTTL == 0 {
		c.IdleTopicTTL = DefaultIdleTopicTTL
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = DefaultClaimTimeout
	}
	if c.GapTimeout == 0 {
		c.GapTimeout = DefaultGapTimeout
	}
	if c.QueueAckTimeout == 0 {
		c.QueueAckTimeout = DefaultQueueAckTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Store != nil && c.Durability == nil {
		c.Durability = []Durability{{Pattern: "*"}}
	}
	c.Durability = append([]Durability(nil), c.Durability...)
	c.Presence = append([]PresenceRule(nil), c.Presence...)
	switch {
	case c.MaxPayload < 0:
		return c, fmt.Errorf("%w: MaxPayload %d is negative", ErrInvalidConfig, c.MaxPayload)
	case c.MaxPayload > 64<<20:
		return c, fmt.Errorf("%w: MaxPayload %d is over 64 MiB", ErrInvalidConfig, c.MaxPayload)
	case c.SubscriptionBuffer < 0:
		return c, fmt.Errorf("%w: SubscriptionBuffer %d is negative", ErrInvalidConfig, c.SubscriptionBuffer)
	case c.ReplicationFactor < 0 || c.ReplicationFactor > 16:
		return c, fmt.Errorf("%w: ReplicationFactor %d is not in 1..16", ErrInvalidConfig, c.ReplicationFactor)
	case c.Workers < 0:
		return c, fmt.Errorf("%w: Workers %d is negative", ErrInvalidConfig, c.Workers)
	case c.RequestTimeout < 0 || c.ClaimTimeout < 0 || c.GapTimeout < 0 || c.StoreTimeout < 0 || c.QueueAckTimeout < 0:
		return c, fmt.Errorf("%w: negative timeout", ErrInvalidConfig)
	}
	return c, nil
}

// gossipKey derives memberlist's 32-byte encryption key from the secret.
func (c Config) gossipKey() []byte {
	if len(c.Secret) == 0 {
		return nil
	}
	k := sha256.Sum256(append([]byte("ringcast gossip key\x00"), c.Secret...))
	return k[:]
}

// ringConfig returns the membership configuration of a node whose link
// listener is at peerAddr. Members advertise the link protocol version, so
// that members whose links could not talk to each other do not share a ring.
func (c Config) ringConfig(peerAddr string) ring.Config {
	return ring.Config{
		NodeName:    c.NodeName,
		BindAddr:    c.GossipAddr,
		ClusterName: c.ClusterName,
		Roles:       c.Roles,
		PeerAddr:    peerAddr,
		Seeds:       c.Seeds,
		SecretKey:   c.gossipKey(),

		InsecureAllowRemotePeers: c.InsecureAllowRemotePeers,
		Timings:                  c.Gossip,
		ProtocolVersion:          wire.ProtocolVersion,
		Logger:                   c.Logger,
	}
}

// linkFrameLimit is the MaxFrameSize New gives the node's links: one
// payload of MaxPayload, and room for the fields around it.
func linkFrameLimit(cfg Config) int { return cfg.MaxPayload + 64<<10 + 2*MaxTopicLen }
