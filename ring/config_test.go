package ring

import (
	"errors"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewInvalidConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"unknown role", Config{Roles: []string{"storage"}}},
		{"name too long", Config{NodeName: strings.Repeat("n", MaxNodeNameLen+1)}},
		{"name not utf8", Config{NodeName: "bad\xff"}},
		{"bind addr without port", Config{BindAddr: "127.0.0.1"}},
		{"bind addr hostname", Config{BindAddr: "localhost:0"}},
		{"bind port out of range", Config{BindAddr: "127.0.0.1:70000"}},
		{"advertise without ip", Config{AdvertiseAddr: ":7946"}},
		{"advertise fixed port, random bind port", Config{AdvertiseAddr: "10.0.0.1:7946"}},
		{"cluster name too long", Config{ClusterName: strings.Repeat("c", 256)}},
		{"peer addr without port", Config{PeerAddr: "127.0.0.1"}},
		{"peer addr too long", Config{PeerAddr: strings.Repeat("h", MaxPeerAddrLen) + ":1"}},
		{"secret key size", Config{SecretKey: make([]byte, 10)}},
		{"negative partitions", Config{PartitionCount: -1}},
		{"too many partitions", Config{PartitionCount: MaxPartitionCount + 1}},
		{"one virtual node", Config{VirtualNodes: 1}},
		{"too many virtual nodes", Config{VirtualNodes: MaxVirtualNodes + 1}},
		{"load 1", Config{Load: 1}},
		{"load below 1", Config{Load: 0.5}},
		{"load NaN", Config{Load: math.NaN()}},
		{"load Inf", Config{Load: math.Inf(1)}},
		{"negative probe interval", Config{Timings: Timings{ProbeInterval: -time.Second}}},
		{"probe timeout not below interval", Config{Timings: Timings{ProbeInterval: time.Second, ProbeTimeout: time.Second}}},
		{"negative suspicion mult", Config{Timings: Timings{SuspicionMult: -1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err == nil {
				r.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if !strings.HasPrefix(err.Error(), "ring: invalid config: ") {
				t.Fatalf("err = %q lacks details prefix", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	r := newTestRing(t, Config{})
	local := r.LocalMember()
	if local.Name == "" || local.Name != r.LocalName() {
		t.Fatalf("local name %q / %q", local.Name, r.LocalName())
	}
	if !slices.Equal(local.Roles, []string{RoleTopics}) {
		t.Fatalf("roles = %v, want [topics]", local.Roles)
	}
	if local.Version != 0 {
		t.Fatalf("version = %d, want the zero default", local.Version)
	}
	host, port, err := net.SplitHostPort(r.GossipAddr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("GossipAddr = %q, %v", r.GossipAddr(), err)
	}
	v := r.View()
	if v == nil || v.Len() != 1 || v.Version() == 0 {
		t.Fatalf("first view = %+v", v)
	}
	m, ok := v.Member(local.Name)
	if !ok || m.GossipAddr != r.GossipAddr() {
		t.Fatalf("view member = %+v, %v", m, ok)
	}
	owner, err := r.Owner("anything")
	if err != nil || owner.Name != local.Name {
		t.Fatalf("Owner = %v, %v", owner, err)
	}
	if got := v.Share(local.Name); got != 1 {
		t.Fatalf("Share = %v, want 1", got)
	}
	s, err := Config{}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.PartitionCount != DefaultPartitionCount || s.VirtualNodes != DefaultVirtualNodes ||
		s.Load != DefaultLoad || s.ClusterName != DefaultClusterName {
		t.Fatalf("defaults not applied: %+v", s.Config)
	}
	if s.ProbeInterval != time.Second || s.ProbeTimeout != 500*time.Millisecond ||
		s.TCPTimeout != 10*time.Second || s.SuspicionMult != 4 {
		t.Fatalf("timing defaults are not memberlist's LAN defaults: %+v", s.Config)
	}
}

func TestNewDoesNotRetainCallerConfig(t *testing.T) {
	roles := []string{RoleGateway, RoleTopics, RoleGateway}
	key := []byte("0123456789abcdef")
	cfg := Config{NodeName: "a", Roles: roles, SecretKey: key, PeerAddr: "127.0.0.1:1"}.FastTimings()
	before := cfg
	r := newTestRing(t, cfg)
	if cfg.PartitionCount != 0 || cfg.BindAddr != "" || cfg.Logger != nil || cfg.NodeName != before.NodeName {
		t.Fatalf("caller config mutated: %+v", cfg)
	}
	roles[0], roles[1] = "x", "y"
	key[0] = 'X'
	got := r.LocalMember().Roles
	if !slices.Equal(got, []string{RoleGateway, RoleTopics}) {
		t.Fatalf("roles = %v, want deduplicated [gateway topics] unaffected by caller", got)
	}
	if r.set.SecretKey[0] != '0' {
		t.Fatal("secret key shares memory with the caller")
	}
}

func TestFastTimings(t *testing.T) {
	base := Config{NodeName: "x", Timings: Timings{ProbeInterval: time.Hour}}
	fast := base.FastTimings()
	if base.ProbeInterval != time.Hour {
		t.Fatal("FastTimings changed its receiver")
	}
	if fast.NodeName != "x" || fast.ProbeInterval != 250*time.Millisecond || fast.ProbeTimeout != 150*time.Millisecond ||
		fast.GossipInterval != 20*time.Millisecond || fast.SuspicionMult != 3 || fast.SuspicionMaxTimeoutMult != 3 ||
		fast.PushPullInterval != time.Second || fast.TCPTimeout != time.Second ||
		fast.ReconnectInterval != 500*time.Millisecond || fast.JoinRetryMax != 2*time.Second {
		t.Fatalf("FastTimings = %+v", fast)
	}
	if _, err := fast.normalize(); err != nil {
		t.Fatalf("FastTimings config invalid: %v", err)
	}
}

func TestDefaultNodeName(t *testing.T) {
	a, b := NewNodeName(), NewNodeName()
	if a == b {
		t.Fatalf("two default names are equal: %q", a)
	}
	if len(a) > MaxNodeNameLen || !strings.Contains(a, "-") {
		t.Fatalf("default name %q", a)
	}
}

func TestAdvertiseAddr(t *testing.T) {
	s, err := Config{BindAddr: "127.0.0.1:0", AdvertiseAddr: "127.0.0.1:0"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.advIP != "127.0.0.1" || s.advPort != 0 {
		t.Fatalf("advertise = %s:%d", s.advIP, s.advPort)
	}
	s, err = Config{BindAddr: ":7946", AdvertiseAddr: "10.1.2.3:0"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.bindIP != "0.0.0.0" || s.bindPort != 7946 || s.advIP != "10.1.2.3" || s.advPort != 7946 {
		t.Fatalf("settings = %+v", s)
	}
	r := newTestRing(t, Config{NodeName: "adv", AdvertiseAddr: "127.0.0.1:0"})
	if _, port, _ := net.SplitHostPort(r.GossipAddr()); port == "0" {
		t.Fatalf("GossipAddr = %s", r.GossipAddr())
	}
}
