package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// selfSigned returns the PEM of a self-signed certificate for 127.0.0.1
// named cn, and of its key.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writePair writes a pair to the files, with a modification time of its
// own so that a change shows whatever the file system's resolution.
func writePair(t *testing.T, certFile, keyFile string, certPEM, keyPEM []byte, mtime time.Time) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{certFile, certPEM}, {keyFile, keyPEM}} {
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// servedCN connects to addr over TLS and returns the common name of the
// certificate served.
func servedCN(t *testing.T, addr string) string {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test checks which certificate is served
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestTLSReloadsRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := selfSigned(t, "first")
	start := time.Now().Add(-time.Minute)
	writePair(t, certFile, keyFile, c1, k1, start)

	logs := &syncBuffer{}
	tf := &TLSFlags{Cert: certFile, Key: keyFile}
	tcp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tf.Listener(tcp, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	addr := tcp.Addr().String()

	// HTTPS works, with a client that trusts the certificate.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c1)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := servedCN(t, addr); got != "first" {
		t.Fatalf("served %q", got)
	}

	// Renewed files are served without a restart, within a second.
	c2, k2 := selfSigned(t, "second, renewed")
	writePair(t, certFile, keyFile, c2, k2, start.Add(time.Second))
	waitFor(t, testTimeout, "the renewed certificate", func() bool { return servedCN(t, addr) == "second, renewed" })

	// A bad renewal keeps the certificate and says so.
	writePair(t, certFile, keyFile, c1, k2, start.Add(2*time.Second)) // a key of another certificate
	waitFor(t, testTimeout, "the bad renewal to be logged", func() bool {
		if got := servedCN(t, addr); got != "second, renewed" {
			t.Fatalf("after a bad renewal, served %q", got)
		}
		return strings.Contains(logs.String(), "the renewed certificate does not load")
	})
	// The files fixed, the next certificate is picked up.
	c3, k3 := selfSigned(t, "third")
	writePair(t, certFile, keyFile, c3, k3, start.Add(3*time.Second))
	waitFor(t, testTimeout, "the third certificate", func() bool { return servedCN(t, addr) == "third" })
}

func TestCertReloaderChecksAtMostOncePerSecond(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := selfSigned(t, "first")
	start := time.Now().Add(-time.Minute)
	writePair(t, certFile, keyFile, c1, k1, start)
	r, err := NewCertReloader(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	r.checkedAt = now
	c2, k2 := selfSigned(t, "second")
	writePair(t, certFile, keyFile, c2, k2, start.Add(time.Second))
	cert, _ := r.GetCertificate(nil)
	if cert.Leaf.Subject.CommonName != "first" {
		t.Fatal("reloaded before a second passed")
	}
	now = now.Add(certCheckEvery)
	cert, _ = r.GetCertificate(nil)
	if cert.Leaf.Subject.CommonName != "second" {
		t.Fatal("not reloaded after a second")
	}
	// Files gone: the certificate stays.
	_ = os.Remove(certFile)
	now = now.Add(certCheckEvery)
	if cert, _ = r.GetCertificate(nil); cert.Leaf.Subject.CommonName != "second" {
		t.Fatal("lost the certificate when its file went away")
	}
}

func TestTLSFlagsValidated(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, _ := selfSigned(t, "first")
	_, k2 := selfSigned(t, "other")
	writePair(t, certFile, keyFile, c1, k2, time.Now())
	for _, tc := range []struct {
		flags TLSFlags
		want  string
	}{
		{TLSFlags{Cert: certFile}, "--tls-cert and --tls-key go together"},
		{TLSFlags{Key: keyFile}, "--tls-cert and --tls-key go together"},
		{TLSFlags{Cert: certFile, Key: keyFile}, "private key does not match public key"},
		{TLSFlags{Cert: filepath.Join(dir, "missing.pem"), Key: keyFile}, "no such file"},
	} {
		tcp, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, err = tc.flags.Listener(tcp, nil)
		_ = tcp.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.flags, err, tc.want)
		}
	}
	// Neither: the listener is served as it is.
	tcp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if ln, err := (&TLSFlags{}).Listener(tcp, nil); err != nil || ln != tcp {
		t.Fatalf("no TLS: %v %v", ln, err)
	}
}
