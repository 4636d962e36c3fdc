package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/transport"
)

func TestProtectedModeFlag(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		vars   map[string]string
		remote bool
	}{
		{nil, nil, false},
		{[]string{"--protected-mode=false"}, nil, true},
		{[]string{"--protected-mode"}, map[string]string{"RINGCAST_PROTECTED_MODE": "false"}, false},
		{nil, map[string]string{"RINGCAST_PROTECTED_MODE": "false"}, true},
	} {
		c, _, _, _ := testCommand()
		if err := c.Parse(tc.args, env(tc.vars)); err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.vars, err)
		}
		if got := c.NodeConfig(nil, nil).InsecureAllowRemotePeers; got != tc.remote {
			t.Errorf("%v %v: InsecureAllowRemotePeers = %v", tc.args, tc.vars, got)
		}
		if c.Common.ProtectedMode == tc.remote {
			t.Errorf("%v %v: Common.ProtectedMode = %v", tc.args, tc.vars, c.Common.ProtectedMode)
		}
	}
	c, _, _, _ := testCommand()
	if err := c.Parse([]string{"--protected-mode=maybe"}, env(nil)); err == nil {
		t.Fatal("--protected-mode=maybe accepted")
	}
}

// pkiDir writes a CA and peer certificates as PEM files.
type pkiDir struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newPKI(t *testing.T, dir, name string) *pkiDir {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pkiDir{t: t, dir: dir, cert: cert, key: key}
	p.write(name+".pem", "CERTIFICATE", der)
	return p
}

func (p *pkiDir) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue writes a peer certificate and key signed by p, as name.crt and
// name.key.
func (p *pkiDir) issue(name string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(name+".crt", "CERTIFICATE", der), p.write(name+".key", "EC PRIVATE KEY", kder)
}

func (p *pkiDir) caFile() string { return filepath.Join(p.dir, p.cert.Subject.CommonName+".pem") }

func TestPeerTLSFlagsChecked(t *testing.T) {
	dir := t.TempDir()
	ca, other := newPKI(t, dir, "ca"), newPKI(t, dir, "other")
	cert, key := ca.issue("n1")
	otherCert, otherKey := other.issue("n2")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		files PeerTLSFiles
		want  string
	}{
		{PeerTLSFiles{CA: ca.caFile()}, "go together"},
		{PeerTLSFiles{Cert: cert, Key: key}, "go together"},
		{PeerTLSFiles{CA: filepath.Join(dir, "missing"), Cert: cert, Key: key}, "no such file"},
		{PeerTLSFiles{CA: garbage, Cert: cert, Key: key}, "holds no PEM certificate"},
		{PeerTLSFiles{CA: ca.caFile(), Cert: cert, Key: otherKey}, "--peer-tls-cert/--peer-tls-key"},
		{PeerTLSFiles{CA: ca.caFile(), Cert: otherCert, Key: otherKey}, "is not a peer certificate of --peer-tls-ca"},
	} {
		c, _, _, _ := testCommand()
		vars := map[string]string{"RINGCAST_PEER_TLS_CA": tc.files.CA, "RINGCAST_PEER_TLS_CERT": tc.files.Cert, "RINGCAST_PEER_TLS_KEY": tc.files.Key}
		err := c.Parse(nil, env(vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.files, err, tc.want)
		}
	}
	c, _, _, _ := testCommand()
	if err := c.Parse([]string{"--peer-tls-ca", ca.caFile(), "--peer-tls-cert", cert, "--peer-tls-key", key}, env(nil)); err != nil {
		t.Fatal(err)
	}
	if c.NodeConfig(nil, nil).PeerTLS == nil {
		t.Fatal("NodeConfig has no PeerTLS")
	}
}

// tlsNode starts a transport with the peer TLS configuration that the
// flags describe.
func tlsNode(t *testing.T, name string, files PeerTLSFiles, h transport.Handler) *transport.Transport {
	t.Helper()
	c, _, _, _ := testCommand()
	if err := c.Parse([]string{"--peer-tls-ca", files.CA, "--peer-tls-cert", files.Cert, "--peer-tls-key", files.Key}, env(nil)); err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = transport.HandlerFunc(func(string, transport.FrameType, []byte) {})
	}
	tr, err := transport.New(transport.Config{NodeName: name, Handler: h, TLS: c.NodeConfig(nil, nil).PeerTLS,
		ReconnectMin: 5 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// counter counts the frames a transport receives.
type counter struct{ n chan struct{} }

func (c counter) HandleFrame(string, transport.FrameType, []byte) { c.n <- struct{}{} }

// Nodes whose certificates the same CA signed link over mutual TLS; a node
// signed by another CA is refused; certificates are reloaded when their
// files change.
func TestPeerTLSLinks(t *testing.T) {
	dir := t.TempDir()
	ca, other := newPKI(t, dir, "ca"), newPKI(t, dir, "other")
	certA, keyA := ca.issue("a")
	certB, keyB := ca.issue("b")
	got := counter{n: make(chan struct{}, 16)}
	b := tlsNode(t, "b", PeerTLSFiles{CA: ca.caFile(), Cert: certB, Key: keyB}, got)
	a := tlsNode(t, "a", PeerTLSFiles{CA: ca.caFile(), Cert: certA, Key: keyA}, nil)
	frame := transport.AppendFrame(nil, transport.FirstUserFrame, []byte("hello"))
	if err := a.Send(transport.Peer{Name: "b", Addr: b.Addr()}, frame); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got.n:
	case <-time.After(5 * time.Second):
		t.Fatal("no frame over mutual TLS")
	}

	// A node whose certificate another CA signed (it trusts ours, so only
	// b's check stops it).
	otherCert, otherKey := other.issue("x")
	both := filepath.Join(dir, "both.pem")
	caPEM, _ := os.ReadFile(ca.caFile())
	otherPEM, _ := os.ReadFile(other.caFile())
	if err := os.WriteFile(both, append(caPEM, otherPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	x := tlsNode(t, "x", PeerTLSFiles{CA: both, Cert: otherCert, Key: otherKey}, nil)
	if err := x.Send(transport.Peer{Name: "b", Addr: b.Addr()}, frame); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Refused.Handshake == 0 {
		if time.Now().After(deadline) {
			t.Fatal("b did not refuse a certificate from another CA")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-got.n:
		t.Fatal("a node with a certificate from another CA delivered a frame")
	default:
	}

	// Rotate x onto the cluster's CA by rewriting its files: its next
	// handshake uses the new certificate.
	newCert, newKey := ca.issue("x2")
	for _, f := range [][2]string{{newCert, otherCert}, {newKey, otherKey}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(f[1], later, later); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-got.n:
	case <-time.After(5 * time.Second):
		t.Fatal("no frame after the certificate was replaced")
	}
	if err := errors.Join(a.Close(), x.Close()); err != nil {
		t.Fatal(err)
	}
}
