package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// certCheckEvery is how often, at most, CertReloader looks at its files.
const certCheckEvery = time.Second

// TLSFlags are the values of --tls-cert and --tls-key.
type TLSFlags struct {
	Cert string // --tls-cert: PEM certificate chain file
	Key  string // --tls-key: PEM private key file
}

// DeclareTLS declares --tls-cert and --tls-key, which make the client
// listener serve HTTPS and WSS.
func (c *Command) DeclareTLS() *TLSFlags {
	f := &TLSFlags{}
	c.Var(stringValue{&f.Cert}, "tls-cert", "RINGCAST_TLS_CERT",
		"PEM file of the certificate (chain) with which --listen serves HTTPS and WSS; with --tls-key. A renewed file is picked up within a second, without a restart")
	c.Var(stringValue{&f.Key}, "tls-key", "RINGCAST_TLS_KEY",
		"PEM file of the private key of --tls-cert")
	return f
}

// Listener returns ln serving TLS with the flags' certificate, which is
// reloaded when its files change, or ln itself when neither flag is set.
// Both flags or neither must be set, and the files must hold a matching
// certificate and key.
func (f *TLSFlags) Listener(ln net.Listener, log *slog.Logger) (net.Listener, error) {
	switch {
	case f.Cert == "" && f.Key == "":
		return ln, nil
	case f.Cert == "" || f.Key == "":
		return nil, errors.New("--tls-cert and --tls-key go together: set both, or neither")
	}
	r, err := NewCertReloader(f.Cert, f.Key, log)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, r.Config()), nil
}

// CertReloader serves a certificate from a pair of PEM files and picks up
// renewed files: on a handshake at most once per second it compares the
// files' size and modification time with those it loaded, and loads them
// again if they changed. A pair that does not load (half written, a key
// of another certificate) keeps the old certificate and is logged, and
// tried again at the next change. It needs no goroutine. It is safe for
// concurrent use.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp // of the files loaded, or last failing
	checkedAt time.Time
}

// fileStamp is what tells a file changed.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// NewCertReloader loads the pair and returns a CertReloader serving it.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := r.stat()
	if err == nil {
		r.cert, err = loadPair(certFile, keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	r.stamp, r.checkedAt = stamp, r.now()
	return r, nil
}

// Config returns a server TLS configuration that serves the reloader's
// certificate, TLS 1.2 or later, HTTP/1.1 (WebSocket upgrades need it).
func (r *CertReloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

// GetCertificate returns the current certificate, reloading the files
// first if they changed (checked at most once a second).
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checkedAt) < certCheckEvery {
		return r.cert, nil
	}
	r.checkedAt = now
	stamp, err := r.stat()
	if err != nil {
		r.log.Error("tls: cannot read the certificate files; serving the previous certificate", "err", err)
		return r.cert, nil
	}
	if stamp == r.stamp {
		return r.cert, nil
	}
	r.stamp = stamp
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Error("tls: the renewed certificate does not load; serving the previous one", "cert", r.certFile, "key", r.keyFile, "err", err)
		return r.cert, nil
	}
	r.cert = cert
	r.log.Info("tls: certificate reloaded", "cert", r.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	return r.cert, nil
}

func (r *CertReloader) stat() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	}
	return s, nil
}

// loadPair loads and parses a certificate and its key.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}
