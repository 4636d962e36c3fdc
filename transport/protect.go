package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Protected mode: a Transport with neither a Secret nor TLS cannot tell a
// peer from anyone else who reaches its port, so it accepts connections
// from loopback addresses only, and dials only peers that turn out to be
// on loopback, unless Config.InsecureAllowRemotePeers says the network
// itself is trusted. A single-host cluster (tests, development, the
// examples) works unchanged; a multi-host one must share a secret or peer
// certificates first.

// protectedModeFix tells an operator how to get out of protected mode.
const protectedModeFix = "set the same shared secret (ringcast: --secret or RINGCAST_SECRET) or peer TLS certificates " +
	"(--peer-tls-ca, --peer-tls-cert, --peer-tls-key) on every node; or bind the peer address to loopback; " +
	"or, on a trusted private network only, turn protected mode off (--protected-mode=false)"

// protectedModeError is the refusal of a connection from addr claiming to
// be node name.
func protectedModeError(name string, addr net.Addr) error {
	return fmt.Errorf("%w: %q connected from non-loopback address %s, but this node has no shared secret and no peer TLS, "+
		"so it accepts peers on loopback only: %s", ErrProtectedMode, name, addrHost(addr), protectedModeFix)
}

// isLoopback reports whether addr is a TCP address on 127.0.0.0/8 or ::1
// (an IPv4-mapped loopback address counts).
func isLoopback(addr net.Addr) bool {
	ip, ok := addrIP(addr)
	return ok && ip.IsLoopback()
}

// addrIP returns the IP address of a TCP address.
func addrIP(addr net.Addr) (netip.Addr, bool) {
	if addr == nil {
		return netip.Addr{}, false
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// addrHost returns the IP of addr as text, or its whole text if it has
// none: the key of the per-address limit on pending handshakes.
func addrHost(addr net.Addr) string {
	if ip, ok := addrIP(addr); ok {
		return ip.String()
	}
	if addr == nil {
		return ""
	}
	return addr.String()
}

// checkTLS validates Config.TLS and returns the client and server
// configurations derived from it (nil, nil without TLS). Both require TLS
// 1.3; the server requires and verifies a client certificate.
func checkTLS(c *tls.Config) (client, server *tls.Config, err error) {
	if c == nil {
		return nil, nil, nil
	}
	verifies := c.VerifyConnection != nil || c.VerifyPeerCertificate != nil
	switch {
	case c.ClientAuth == tls.RequireAndVerifyClientCert && c.ClientCAs == nil && !verifies:
		return nil, nil, fmt.Errorf("%w: TLS.ClientCAs is not set: the certificates of dialing peers cannot be verified", ErrInvalidConfig)
	case c.ClientAuth == tls.RequireAndVerifyClientCert:
	case c.ClientAuth == tls.RequireAnyClientCert && verifies:
	default:
		return nil, nil, fmt.Errorf("%w: TLS.ClientAuth must be tls.RequireAndVerifyClientCert (or RequireAnyClientCert with a VerifyConnection callback): every peer proves itself with a certificate", ErrInvalidConfig)
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil {
		return nil, nil, fmt.Errorf("%w: TLS has no certificate (Certificates or GetCertificate)", ErrInvalidConfig)
	}
	if len(c.Certificates) == 0 && c.GetClientCertificate == nil {
		return nil, nil, fmt.Errorf("%w: TLS has no client certificate (Certificates or GetClientCertificate)", ErrInvalidConfig)
	}
	server = c.Clone()
	server.MinVersion = max(server.MinVersion, tls.VersionTLS13)
	client = server.Clone()
	client.ClientAuth = tls.NoClientCert
	return client, server, nil
}

// isTLSAlert reports whether err is an alert the TLS peer sent.
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}
