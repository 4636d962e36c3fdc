package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// PeerTLSFiles names the PEM files of mutual TLS between nodes: the CA
// that signs every node's certificate, and this node's certificate and
// key. All three are set, or none.
type PeerTLSFiles struct {
	CA   string // --peer-tls-ca
	Cert string // --peer-tls-cert
	Key  string // --peer-tls-key
}

// declarePeerFlags declares the flags that secure node-to-node traffic, and
// --protected-mode, which also keeps clients of other hosts out while no
// client authentication is configured (see Guard).
func (c *Command) declarePeerFlags() {
	cm := &c.Common
	cm.ProtectedMode = true
	c.Var(boolValue{&cm.ProtectedMode}, "protected-mode", "RINGCAST_PROTECTED_MODE",
		"without --secret (and, for peer links, without --peer-tls-*), accept peers and gossip from loopback only; while no client authentication is configured, serve HTTP and WebSocket clients of this host only (403 to others); refusals say why; false (write --protected-mode=false) lets any host that reaches the ports in, for a trusted private network only")
	c.Var(stringValue{&cm.PeerTLS.CA}, "peer-tls-ca", "RINGCAST_PEER_TLS_CA",
		"PEM file of the CA that signs every node's peer certificate: links between nodes use mutual TLS 1.3, and any certificate this CA signed is a peer (no host name check); with --peer-tls-cert and --peer-tls-key; files are re-read when they change")
	c.Var(stringValue{&cm.PeerTLS.Cert}, "peer-tls-cert", "RINGCAST_PEER_TLS_CERT",
		"PEM file of this node's peer certificate (signed by --peer-tls-ca, for both server and client authentication)")
	c.Var(stringValue{&cm.PeerTLS.Key}, "peer-tls-key", "RINGCAST_PEER_TLS_KEY",
		"PEM file of the private key of --peer-tls-cert")
}

// checkPeerFlags validates the peer TLS files once flags are parsed: all
// three or none, readable, the certificate matching its key and signed by
// the CA. It keeps what it loaded for NodeConfig.
func (c *Command) checkPeerFlags() error {
	f := c.Common.PeerTLS
	switch n := count(f.CA != "", f.Cert != "", f.Key != ""); n {
	case 0:
		c.peerTLS = nil
		return nil
	case 3:
	default:
		return errors.New("--peer-tls-ca, --peer-tls-cert and --peer-tls-key go together: set all three or none")
	}
	p := &peerTLS{files: f}
	if err := p.load(); err != nil {
		return err
	}
	c.peerTLS = p
	return nil
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// peerTLS keeps the CA pool and certificate of mutual TLS between nodes,
// reloading them when their files change: each handshake checks the files'
// modification times, and re-reads them if one moved. A reload that fails
// keeps the last good files and logs why.
type peerTLS struct {
	files PeerTLSFiles
	log   *slog.Logger

	mu    sync.Mutex
	stamp string // modification times of the three files when loaded
	pool  *x509.CertPool
	cert  *tls.Certificate
}

// stampOf returns the modification times and sizes of the files.
func (p *peerTLS) stampOf() (string, error) {
	var s string
	for _, name := range []string{p.files.CA, p.files.Cert, p.files.Key} {
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		s += fi.ModTime().Format(time.RFC3339Nano) + "/" + strconv.FormatInt(fi.Size(), 10) + ";"
	}
	return s, nil
}

// load reads the three files and checks them.
func (p *peerTLS) load() error {
	stamp, err := p.stampOf()
	if err != nil {
		return fmt.Errorf("peer TLS: %w", err)
	}
	pem, err := os.ReadFile(p.files.CA)
	if err != nil {
		return fmt.Errorf("--peer-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--peer-tls-ca: %s holds no PEM certificate", p.files.CA)
	}
	cert, err := tls.LoadX509KeyPair(p.files.Cert, p.files.Key)
	if err != nil {
		return fmt.Errorf("--peer-tls-cert/--peer-tls-key: %w", err)
	}
	if err := verifyPeer(pool, cert.Certificate); err != nil {
		return fmt.Errorf("--peer-tls-cert: %s is not a peer certificate of --peer-tls-ca %s: %w", p.files.Cert, p.files.CA, err)
	}
	p.mu.Lock()
	p.stamp, p.pool, p.cert = stamp, pool, &cert
	p.mu.Unlock()
	return nil
}

// current returns the pool and certificate, reloading them first if a
// file changed.
func (p *peerTLS) current() (*x509.CertPool, *tls.Certificate) {
	stamp, err := p.stampOf()
	p.mu.Lock()
	changed := err == nil && stamp != p.stamp
	p.mu.Unlock()
	if changed {
		if err := p.load(); err != nil {
			p.logger().Error("peer TLS files changed but cannot be loaded; keeping the previous ones", "err", err)
			p.mu.Lock()
			p.stamp = stamp // do not retry until they change again
			p.mu.Unlock()
		} else {
			p.logger().Info("peer TLS files reloaded", "ca", p.files.CA, "cert", p.files.Cert)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pool, p.cert
}

func (p *peerTLS) logger() *slog.Logger {
	if p.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.log
}

// config returns the tls.Config of the node's links, logging reloads to
// log. Both ends present their certificate and verify the other's against
// the current CA; peers are dialled by address, so no host name is
// checked: the CA is the cluster's trust root.
func (p *peerTLS) config(log *slog.Logger) *tls.Config {
	p.log = log
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			_, cert := p.current()
			return cert, nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			_, cert := p.current()
			return cert, nil
		},
		// The client side's verification is VerifyConnection's.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			pool, _ := p.current()
			chain := make([][]byte, 0, len(cs.PeerCertificates))
			for _, c := range cs.PeerCertificates {
				chain = append(chain, c.Raw)
			}
			return verifyPeer(pool, chain)
		},
	}
}

// verifyPeer checks that chain (DER, leaf first) leads to pool.
func verifyPeer(pool *x509.CertPool, chain [][]byte) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	certs := make([]*x509.Certificate, 0, len(chain))
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	return err
}

// peerConfig fills in the node configuration's peer security from the
// flags.
func (c *Command) peerConfig(cfg *pubsub.Config, log *slog.Logger) {
	cfg.InsecureAllowRemotePeers = !c.Common.ProtectedMode
	if c.peerTLS != nil {
		cfg.PeerTLS = c.peerTLS.config(log)
	}
}
