package ring

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
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

	// Seeds are gossip addresses ("host:port") of members to join. A host
	// may be an IP address or a DNS name, which is resolved on every attempt
	// to all its addresses (a Kubernetes headless service, for example).
	// New does not contact them: Ring.JoinSeeds does, retrying until one
	// answers, and healing rejoins the ones that are not alive members.
	Seeds []string

	// SecretKey, when set, encrypts and authenticates gossip with AES-GCM;
	// it must be 16, 24 or 32 bytes, and equal on every member. Without
	// it, the Ring runs in protected mode (see InsecureAllowRemotePeers).
	SecretKey []byte

	// InsecureAllowRemotePeers turns protected mode off. In protected mode
	// (no SecretKey), gossip from addresses other than loopback
	// (127.0.0.0/8, ::1) is dropped, logged and counted, since anyone who
	// reaches the gossip port could otherwise join the cluster, take a
	// share of the ring, read the member list or declare members dead.
	// Set it only on a network where every host is trusted.
	InsecureAllowRemotePeers bool

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

	// Timings tune failure detection and gossip; zero fields take
	// memberlist's LAN defaults. See FastTimings.
	Timings

	// ProtocolVersion is the protocol version this node advertises in its
	// member metadata. Members advertising another version are left out of
	// every View, so that members that could not talk to each other do not
	// share a ring: across a version change a cluster is upgraded as a
	// whole. Zero is a valid version for programs that use this package
	// alone.
	ProtocolVersion uint8

	// Logger receives the Ring's own log records and memberlist's log
	// lines, at matching levels. Nil discards everything. memberlist's
	// lines are records with the message "memberlist", the line's text
	// as the attribute "line" and what identifies its kind (the text
	// without its variable details) as the attribute "kind". They are
	// logged one record each, so garbage sent to the gossip port is a
	// flood of records: a caller that faces it wraps the logger's handler
	// in a sampling one, as package pubsub does.
	Logger *slog.Logger

	// allowed, if set, replaces loopbackNets as what protected mode
	// accepts (a test seam).
	allowed []netip.Prefix
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
	for _, step := range []func(*settings) error{
		(*settings).normalizeName,
		(*settings).normalizeAddrs,
		(*settings).normalizeMembership,
		(*settings).normalizeRing,
		func(s *settings) error { return s.Timings.withDefaults() },
	} {
		if err := step(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// normalizeName applies the node name's default and checks it.
func (s *settings) normalizeName() error {
	if s.NodeName == "" {
		s.NodeName = NewNodeName()
	}
	if len(s.NodeName) > MaxNodeNameLen {
		return invalid("node name is %d bytes, limit %d", len(s.NodeName), MaxNodeNameLen)
	}
	if !utf8.ValidString(s.NodeName) {
		return invalid("node name is not valid UTF-8")
	}
	return nil
}

// normalizeAddrs parses the bind and advertise addresses.
func (s *settings) normalizeAddrs() error {
	if s.BindAddr == "" {
		s.BindAddr = DefaultBindAddr
	}
	ip, port, err := splitIPPort(s.BindAddr)
	if err != nil {
		return invalid("bind address %q: %v", s.BindAddr, err)
	}
	if ip == "" {
		ip = "0.0.0.0"
	}
	s.bindIP, s.bindPort = ip, port
	if s.AdvertiseAddr == "" {
		return nil
	}
	ip, port, err = splitIPPort(s.AdvertiseAddr)
	switch {
	case err != nil:
		return invalid("advertise address %q: %v", s.AdvertiseAddr, err)
	case ip == "":
		return invalid("advertise address %q has no IP", s.AdvertiseAddr)
	case port != 0 && s.bindPort == 0:
		return invalid("advertise address %q has a fixed port but the bind port is chosen at random", s.AdvertiseAddr)
	case port == 0:
		port = s.bindPort
	}
	s.advIP, s.advPort = ip, port
	return nil
}

// normalizeMembership checks what the node advertises and shares with the
// cluster: cluster name, roles, peer address and secret key. Roles and key
// are copied.
func (s *settings) normalizeMembership() error {
	if s.ClusterName == "" {
		s.ClusterName = DefaultClusterName
	}
	if len(s.ClusterName) > memberlist.LabelMaxSize {
		return invalid("cluster name is %d bytes, limit %d", len(s.ClusterName), memberlist.LabelMaxSize)
	}
	if len(s.Roles) == 0 {
		s.Roles = []string{RoleTopics}
	} else {
		roles, err := checkRoles(s.Roles)
		if err != nil {
			return err
		}
		s.Roles = roles
	}
	s.Seeds = slices.Clone(s.Seeds)
	for _, seed := range s.Seeds {
		host, port, err := net.SplitHostPort(seed)
		if err != nil {
			return invalid("seed %q: %v", seed, err)
		}
		if host == "" || port == "" {
			return invalid("seed %q: want host:port", seed)
		}
	}
	if len(s.PeerAddr) > MaxPeerAddrLen {
		return invalid("peer address is %d bytes, limit %d", len(s.PeerAddr), MaxPeerAddrLen)
	}
	if s.PeerAddr != "" {
		if _, _, err := net.SplitHostPort(s.PeerAddr); err != nil {
			return invalid("peer address %q: %v", s.PeerAddr, err)
		}
	}
	switch len(s.SecretKey) {
	case 0:
		s.SecretKey = nil
	case 16, 24, 32:
		s.SecretKey = slices.Clone(s.SecretKey)
	default:
		return invalid("secret key is %d bytes, want 16, 24 or 32", len(s.SecretKey))
	}
	return nil
}

// normalizeRing applies the ring parameters' defaults and checks their
// ranges.
func (s *settings) normalizeRing() error {
	for _, p := range []struct {
		name string
		v    *int
		def  int
		min  int
		max  int
	}{
		{"partition count", &s.PartitionCount, DefaultPartitionCount, 1, MaxPartitionCount},
		// consistent walks at most all but one virtual node looking for an
		// owner with spare load; with one virtual node per owner it can
		// miss the only one that has room.
		{"virtual nodes", &s.VirtualNodes, DefaultVirtualNodes, 2, MaxVirtualNodes},
	} {
		switch {
		case *p.v == 0:
			*p.v = p.def
		case *p.v < p.min || *p.v > p.max:
			return invalid("%s %d out of range [%d, %d]", p.name, *p.v, p.min, p.max)
		}
	}
	switch {
	case s.Load == 0:
		s.Load = DefaultLoad
	case math.IsNaN(s.Load) || math.IsInf(s.Load, 0) || s.Load <= 1:
		// A load of 1 or less leaves no room: consistent panics when an
		// owner's share does not fit.
		return invalid("load %v must be a finite number greater than 1", s.Load)
	}
	return nil
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

// NewNodeName returns a fresh node name: the host name (DefaultClusterName
// when it has none), "-" and eight random hexadecimal digits, at most
// MaxNodeNameLen bytes of UTF-8. New uses it when Config.NodeName is empty.
func NewNodeName() string {
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

// advertisesAllowed reports whether the address this node advertises is
// one protected mode accepts (memberlist refuses its own node otherwise).
func (s *settings) advertisesAllowed() bool {
	ip := s.bindIP
	if s.advIP != "" {
		ip = s.advIP
	}
	addr, err := netip.ParseAddr(ip)
	return err == nil && !addr.IsUnspecified() && netAllowed(s.allowedNets(), addr)
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
	if s.protected() && s.advertisesAllowed() {
		mc.CIDRsAllowed = cidrs(s.allowedNets())
	}
	s.Timings.apply(mc)
	mc.Delegate = d
	mc.Events = d
	mc.LogOutput = nil
	mc.Logger = log.New(&logWriter{logger: logger}, "", 0)
	return mc
}
