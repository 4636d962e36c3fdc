package ring

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// Roles a member can advertise.
const (
	// RoleTopics marks a member that owns topics: it is placed on the hash ring.
	RoleTopics = "topics"
	// RoleGateway marks a member that serves WebSocket clients.
	RoleGateway = "gateway"
)

// ProtocolVersion is the ringcast protocol version this package advertises in
// its member metadata. Members advertising another version are left out of
// every View. It moves with the version of the protocol spoken over the
// nodes' links, so that members whose links could not talk to each other do
// not share a ring either: across a version change a cluster is upgraded as
// a whole. Version 2: Deliver frames carry replica copies. Version 3: one
// frame type per message.
const ProtocolVersion uint8 = 3

// minProtocolVersion is the oldest member protocol version this package accepts.
const minProtocolVersion uint8 = 3

// Defaults applied to zero Config fields.
const (
	DefaultBindAddr       = "127.0.0.1:0"
	DefaultClusterName    = "ringcast"
	DefaultPartitionCount = 1021
	DefaultVirtualNodes   = 20
	DefaultLoad           = 1.25
)

// Limits checked by New.
const (
	// MaxNodeNameLen is the longest accepted node name, in bytes.
	MaxNodeNameLen = 128
	// MaxRoles is the largest number of roles a member may advertise.
	MaxRoles = 4
	// MaxPeerAddrLen is the longest accepted peer address, in bytes.
	MaxPeerAddrLen = 255
	// MaxPartitionCount is the largest accepted PartitionCount.
	MaxPartitionCount = 1 << 16
	// MaxVirtualNodes is the largest accepted VirtualNodes.
	MaxVirtualNodes = 1024
)

// maxRoleLen bounds the length of a role name read from a remote member, so
// that roles added by later versions still decode.
const maxRoleLen = 32

// Config configures a Ring. The zero value is valid: every zero field takes
// its documented default. New copies the Config; the caller may reuse or
// change it afterwards without affecting the Ring.
type Config struct {
	// NodeName is the unique name of this node in the cluster, at most
	// MaxNodeNameLen bytes of UTF-8. Default: the host name, "-" and a
	// random suffix.
	NodeName string

	// BindAddr is the gossip listen address, "ip:port", used for both UDP
	// and TCP. Port 0 picks a free port; Ring.GossipAddr reports it. An
	// empty host means all interfaces. Default DefaultBindAddr.
	BindAddr string

	// AdvertiseAddr is the optional gossip address, "ip:port", announced
	// to other members when it differs from the bound one (NAT, containers).
	// Port 0 advertises the bound port. A non-zero advertised port requires a
	// non-zero BindAddr port.
	AdvertiseAddr string

	// ClusterName separates clusters: it is sent as memberlist's label with
	// every gossip packet and stream, and nodes with another name ignore
	// them. At most 255 bytes. Default DefaultClusterName.
	ClusterName string

	// Roles this node advertises; only RoleTopics and RoleGateway are
	// accepted, duplicates are dropped. Default []string{RoleTopics}.
	Roles []string

	// PeerAddr is the node-to-node link address ("host:port") advertised in
	// the member metadata, at most MaxPeerAddrLen bytes. It may be empty when
	// the node runs no link listener.
	PeerAddr string

	// SecretKey, when set, encrypts gossip with AES; it must be 16, 24 or 32
	// bytes, and equal on every member.
	SecretKey []byte

	// PartitionCount is the number of partitions topics are hashed into,
	// 1 to MaxPartitionCount. Default DefaultPartitionCount (1021): a prime,
	// for an even spread of hashes, and far above any expected number of
	// topic owners, so shares stay within a fraction of a percent of each
	// other. Must be equal on every member.
	PartitionCount int

	// VirtualNodes is how many times each owner is placed on the ring
	// (consistent's ReplicationFactor), 2 to MaxVirtualNodes. Default
	// DefaultVirtualNodes. Must be equal on every member.
	VirtualNodes int

	// Load bounds the partitions one owner may hold to Load times the
	// average; it must be greater than 1. Default DefaultLoad. Must be equal
	// on every member.
	Load float64

	// Failure detection and gossip timings. Zero fields take memberlist's
	// LAN defaults (probe every 1 s with a 500 ms timeout, gossip every
	// 200 ms, push/pull every 30 s, TCP timeout 10 s, suspicion multiplier
	// 4). ProbeTimeout must be shorter than ProbeInterval. See FastTimings.
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	TCPTimeout       time.Duration
	SuspicionMult    int

	// Logger receives the Ring's own log records and memberlist's log
	// lines, at matching levels. Nil discards everything.
	Logger *slog.Logger
}

// FastTimings returns a copy of c with aggressive failure-detection timings,
// meant for tests and small clusters on one host or a fast LAN: probe every
// 200 ms with a 100 ms timeout, gossip every 20 ms, suspicion multiplier 2,
// push/pull every 1 s and a 1 s TCP timeout.
//
// With these timings a member that stops without leaving is declared failed
// once some member probes it (each member probes one peer per 200 ms, in
// turn), the probe round ends (200 ms) and the suspicion timeout runs out
// (2 × 200 ms for clusters of up to 10 members); the verdict then spreads in
// a few 20 ms gossip rounds. That is about 0.6 s plus at most 0.2 s per
// member: under 2 s for clusters of up to 6 members on a healthy host. A
// 100 ms probe timeout leaves a busy host some slack; a 50 ms one made
// loaded test machines declare live members dead.
func (c Config) FastTimings() Config {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.SuspicionMult = 2
	c.PushPullInterval = time.Second
	c.TCPTimeout = time.Second
	return c
}

// settings is a validated Config with every default applied, plus the parsed
// addresses.
type settings struct {
	Config
	bindIP   string
	bindPort int
	advIP    string
	advPort  int
}

// params returns the ring parameters of s.
func (s *settings) params() params {
	return params{partitions: s.PartitionCount, vnodes: s.VirtualNodes, load: s.Load}
}

// invalid returns an ErrInvalidConfig error with details.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// normalize validates c and returns a copy with defaults applied. The copy
// shares nothing mutable with c.
func (c Config) normalize() (*settings, error) {
	s := &settings{Config: c}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}

	if s.NodeName == "" {
		s.NodeName = defaultNodeName()
	}
	if len(s.NodeName) > MaxNodeNameLen {
		return nil, invalid("node name is %d bytes, limit %d", len(s.NodeName), MaxNodeNameLen)
	}
	if !utf8.ValidString(s.NodeName) {
		return nil, invalid("node name is not valid UTF-8")
	}

	if s.BindAddr == "" {
		s.BindAddr = DefaultBindAddr
	}
	ip, port, err := splitIPPort(s.BindAddr)
	if err != nil {
		return nil, invalid("bind address %q: %v", s.BindAddr, err)
	}
	if ip == "" {
		ip = "0.0.0.0"
	}
	s.bindIP, s.bindPort = ip, port

	if s.AdvertiseAddr != "" {
		ip, port, err := splitIPPort(s.AdvertiseAddr)
		if err != nil {
			return nil, invalid("advertise address %q: %v", s.AdvertiseAddr, err)
		}
		if ip == "" {
			return nil, invalid("advertise address %q has no IP", s.AdvertiseAddr)
		}
		if port != 0 && s.bindPort == 0 {
			return nil, invalid("advertise address %q has a fixed port but the bind port is chosen at random", s.AdvertiseAddr)
		}
		if port == 0 {
			port = s.bindPort
		}
		s.advIP, s.advPort = ip, port
	}

	if s.ClusterName == "" {
		s.ClusterName = DefaultClusterName
	}
	if len(s.ClusterName) > memberlist.LabelMaxSize {
		return nil, invalid("cluster name is %d bytes, limit %d", len(s.ClusterName), memberlist.LabelMaxSize)
	}

	if len(c.Roles) == 0 {
		s.Roles = []string{RoleTopics}
	} else {
		roles, err := checkRoles(c.Roles)
		if err != nil {
			return nil, err
		}
		s.Roles = roles
	}

	if len(s.PeerAddr) > MaxPeerAddrLen {
		return nil, invalid("peer address is %d bytes, limit %d", len(s.PeerAddr), MaxPeerAddrLen)
	}
	if s.PeerAddr != "" {
		if _, _, err := net.SplitHostPort(s.PeerAddr); err != nil {
			return nil, invalid("peer address %q: %v", s.PeerAddr, err)
		}
	}

	if len(c.SecretKey) > 0 {
		switch len(c.SecretKey) {
		case 16, 24, 32:
		default:
			return nil, invalid("secret key is %d bytes, want 16, 24 or 32", len(c.SecretKey))
		}
		s.SecretKey = slices.Clone(c.SecretKey)
	}

	switch {
	case s.PartitionCount == 0:
		s.PartitionCount = DefaultPartitionCount
	case s.PartitionCount < 1 || s.PartitionCount > MaxPartitionCount:
		return nil, invalid("partition count %d out of range [1, %d]", s.PartitionCount, MaxPartitionCount)
	}
	switch {
	case s.VirtualNodes == 0:
		s.VirtualNodes = DefaultVirtualNodes
	case s.VirtualNodes < 2 || s.VirtualNodes > MaxVirtualNodes:
		// consistent walks at most all but one virtual node looking for an
		// owner with spare load; with one virtual node per owner it can
		// miss the only one that has room.
		return nil, invalid("virtual nodes %d out of range [2, %d]", s.VirtualNodes, MaxVirtualNodes)
	}
	switch {
	case s.Load == 0:
		s.Load = DefaultLoad
	case math.IsNaN(s.Load) || math.IsInf(s.Load, 0) || s.Load <= 1:
		// A load of 1 or less leaves no room: consistent panics when an
		// owner's share does not fit.
		return nil, invalid("load %v must be a finite number greater than 1", s.Load)
	}

	lan := memberlist.DefaultLANConfig()
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"probe interval", &s.ProbeInterval, lan.ProbeInterval},
		{"probe timeout", &s.ProbeTimeout, lan.ProbeTimeout},
		{"gossip interval", &s.GossipInterval, lan.GossipInterval},
		{"push/pull interval", &s.PushPullInterval, lan.PushPullInterval},
		{"TCP timeout", &s.TCPTimeout, lan.TCPTimeout},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return nil, invalid("%s %v is negative", d.name, *d.v)
		}
	}
	if s.ProbeTimeout >= s.ProbeInterval {
		return nil, invalid("probe timeout %v must be shorter than probe interval %v", s.ProbeTimeout, s.ProbeInterval)
	}
	switch {
	case s.SuspicionMult == 0:
		s.SuspicionMult = lan.SuspicionMult
	case s.SuspicionMult < 0:
		return nil, invalid("suspicion multiplier %d is negative", s.SuspicionMult)
	}
	return s, nil
}

// checkRoles returns a copy of roles without duplicates, or an
// ErrInvalidConfig error if a role is unknown.
func checkRoles(roles []string) ([]string, error) {
	out := make([]string, 0, len(roles))
	for _, role := range roles {
		if role != RoleTopics && role != RoleGateway {
			return nil, invalid("unknown role %q", role)
		}
		if !slices.Contains(out, role) {
			out = append(out, role)
		}
	}
	if len(out) > MaxRoles {
		return nil, invalid("%d roles, limit %d", len(out), MaxRoles)
	}
	return slices.Clip(out), nil
}

// splitIPPort splits "ip:port"; the IP may be empty, the port must be given.
func splitIPPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > math.MaxUint16 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q is not an IP address", host)
	}
	return host, port, nil
}

// defaultNodeName returns the host name followed by a random suffix.
func defaultNodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" || !utf8.ValidString(host) {
		host = DefaultClusterName
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	suffix := hex.EncodeToString(b[:])
	if limit := MaxNodeNameLen - len(suffix) - 1; len(host) > limit {
		host = host[:limit]
		for !utf8.ValidString(host) {
			host = host[:len(host)-1]
		}
	}
	return host + "-" + suffix
}

// memberlistConfig translates s into a memberlist configuration. Settings
// that Config does not expose keep memberlist's DefaultLocalConfig values.
func (s *settings) memberlistConfig(d *delegate, logger *slog.Logger) *memberlist.Config {
	mc := memberlist.DefaultLocalConfig()
	mc.Name = s.NodeName
	mc.BindAddr = s.bindIP
	mc.BindPort = s.bindPort
	mc.AdvertisePort = s.bindPort
	if s.advIP != "" {
		mc.AdvertiseAddr = s.advIP
		mc.AdvertisePort = s.advPort
	}
	mc.Label = s.ClusterName
	if len(s.SecretKey) > 0 {
		mc.SecretKey = slices.Clone(s.SecretKey)
	}
	mc.ProbeInterval = s.ProbeInterval
	mc.ProbeTimeout = s.ProbeTimeout
	mc.GossipInterval = s.GossipInterval
	mc.PushPullInterval = s.PushPullInterval
	mc.TCPTimeout = s.TCPTimeout
	mc.SuspicionMult = s.SuspicionMult
	mc.Delegate = d
	mc.Events = d
	mc.LogOutput = nil
	mc.Logger = log.New(&logWriter{logger: logger}, "", 0)
	return mc
}
