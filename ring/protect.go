package ring

import (
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// Protected mode: without a SecretKey, gossip is neither authenticated nor
// encrypted, and anyone who reaches the gossip port could join the cluster,
// take a share of the ring and read the member list, or declare members
// dead. Unless Config.InsecureAllowRemotePeers is set, a Ring without a
// SecretKey therefore accepts gossip from loopback addresses only: every
// packet and stream from another address is dropped before memberlist sees
// it (logged and counted), and memberlist is told to accept only loopback
// members (its CIDRsAllowed) when this node itself advertises a loopback
// address.

// loopbackNets are the sources protected mode accepts.
var loopbackNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// protectedModeFix tells an operator how to get out of protected mode.
const protectedModeFix = "set the same shared secret on every node (ringcast: --secret or RINGCAST_SECRET), " +
	"or bind gossip to loopback, or, on a trusted private network only, turn protected mode off (--protected-mode=false)"

// protected reports whether s runs in protected mode.
func (s *settings) protected() bool {
	return len(s.SecretKey) == 0 && !s.InsecureAllowRemotePeers
}

// allowedNets returns the sources protected mode accepts.
func (s *settings) allowedNets() []netip.Prefix {
	if s.allowed != nil {
		return s.allowed
	}
	return loopbackNets
}

// netAllowed reports whether ip is in one of nets.
func netAllowed(nets []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// cidrs converts nets for memberlist's CIDRsAllowed.
func cidrs(nets []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(nets))
	for _, n := range nets {
		out = append(out, net.IPNet{IP: n.Addr().AsSlice(), Mask: net.CIDRMask(n.Bits(), n.Addr().BitLen())})
	}
	return out
}

// protectedTransport is memberlist's network transport with a filter in
// front: packets and streams from sources outside allowed are dropped. One
// goroutine forwards the packets that pass and one the streams; both end
// in Shutdown.
type protectedTransport struct {
	*memberlist.NetTransport
	allowed []netip.Prefix
	log     *slog.Logger
	refused atomic.Uint64

	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// newProtectedTransport binds memberlist's network transport for mc, as
// memberlist itself would (retrying a random port that is taken on one
// protocol), and sets mc's ports if they were chosen at random.
func newProtectedTransport(mc *memberlist.Config, allowed []netip.Prefix, logger *slog.Logger, mlLogger *log.Logger) (*protectedTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mlLogger}
	attempts := 1
	if mc.BindPort == 0 {
		attempts = 10
	}
	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range attempts {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip transport: %w", err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	t := &protectedTransport{
		NetTransport: nt,
		allowed:      allowed,
		log:          logger,
		packets:      make(chan *memberlist.Packet),
		streams:      make(chan net.Conn),
		done:         make(chan struct{}),
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t, nil
}

// PacketCh returns the packets from allowed sources.
func (t *protectedTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh returns the streams from allowed sources.
func (t *protectedTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops the network transport, then the forwarders.
func (t *protectedTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}

// allow reports whether traffic from addr may reach memberlist, logging
// and counting what may not.
func (t *protectedTransport) allow(addr net.Addr, what string) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err == nil && netAllowed(t.allowed, ap.Addr()) {
		return true
	}
	t.refused.Add(1)
	host := addr.String()
	if err == nil {
		host = ap.Addr().Unmap().String()
	}
	t.log.Warn("ring: protected mode: dropped gossip "+what+" from a non-loopback address, this node has no secret",
		"kind", "protected-mode/"+what, "remote", addr.String(), "source", host, "fix", protectedModeFix)
	return false
}

func (t *protectedTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if !t.allow(p.From, "packet") {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *protectedTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			if !t.allow(c.RemoteAddr(), "stream") {
				_ = c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}
