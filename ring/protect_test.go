package ring

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The protected mode tests narrow what counts as local to 127.0.0.1, so
// that a member bound to 127.0.0.2 plays one on another host.
var onlyFirstLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// remoteMember starts a ring on 127.0.0.2 that lets anyone in.
func remoteMember(t *testing.T, mutate func(c *Config)) *Ring {
	cfg := testConfig("remote", RoleTopics)
	cfg.BindAddr = "127.0.0.2:0"
	cfg.InsecureAllowRemotePeers = true
	if mutate != nil {
		mutate(&cfg)
	}
	return newTestRing(t, cfg)
}

// Without a secret, a member on another address can neither join nor be
// joined: its gossip is dropped (and counted), and it never enters the
// view or takes a share of the ring.
func TestProtectedModeDropsRemoteGossip(t *testing.T) {
	cfg := testConfig("local", RoleTopics)
	cfg.allowed = onlyFirstLoopback
	local := newTestRing(t, cfg)
	remote := remoteMember(t, nil)

	// The remote member's streams come from 127.0.0.1 (the kernel picks
	// the source of a TCP connection), its packets from 127.0.0.2: the
	// former bring it no further than the member list, the latter are
	// dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _ = remote.Join(ctx, local.GossipAddr())
	_, _ = local.Join(ctx, remote.GossipAddr())
	waitFor(t, 5*time.Second, "gossip from 127.0.0.2 dropped", func() bool { return refusedGossip(local) > 0 })
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got := memberNames(local.View()); !slices.Equal(got, []string{"local"}) {
			t.Fatalf("protected member sees %v", got)
		}
	}
	if owner, err := local.View().Owner("some-topic"); err != nil || owner.Name != "local" {
		t.Fatalf("Owner = %v, %v", owner, err)
	}

	// A stream from 127.0.0.2 is closed unread.
	before := refusedGossip(local)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
	c, err := d.Dial("tcp", local.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a refused stream: %v", err)
	}
	if refusedGossip(local) != before+1 {
		t.Fatal("refused stream not counted")
	}
}

// A shared secret, or the explicit opt-out, lets remote members in.
func TestProtectedModeOff(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	for name, mutate := range map[string]func(c *Config){
		"secret":  func(c *Config) { c.SecretKey = key },
		"opt-out": func(c *Config) { c.InsecureAllowRemotePeers = true },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig("local", RoleTopics)
			cfg.allowed = onlyFirstLoopback
			mutate(&cfg)
			local := newTestRing(t, cfg)
			if local.protect != nil {
				t.Fatal("protected mode is on")
			}
			remote := remoteMember(t, func(c *Config) { c.SecretKey = cfg.SecretKey })
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := remote.Join(ctx, local.GossipAddr()); err != nil {
				t.Fatal(err)
			}
			waitConverged(t, []*Ring{local, remote}, []string{"local", "remote"})
		})
	}
}

// refusedGossip returns the gossip r dropped in protected mode.
func refusedGossip(r *Ring) uint64 {
	if r.protect == nil {
		return 0
	}
	return r.protect.refused.Load()
}
