package email_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Credentials the test server accepts.
const (
	smtpUser     = "ringcast"
	smtpPassword = "s3cret pass"
)

// received is a message the test server accepted.
type received struct {
	from, to  string
	tls, auth bool // came over TLS, after AUTH
	header    mail.Header
	subject   string // decoded
	body      string // decoded
	messageID string // without angle brackets
	raw       []byte
}

// smtpServer is a real SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1 that records what it accepts. It offers STARTTLS with a
// self-signed certificate and AUTH PLAIN (over TLS only), and can be told
// to reject recipients, fail transactions temporarily, or go away and come
// back on the same address.
type smtpServer struct {
	t         testing.TB
	addr      string
	serverTLS *tls.Config
	clientTLS *tls.Config // trusts the server's certificate
	noTLS     bool        // offer no STARTTLS
	implicit  bool        // TLS from the first byte (SMTPS)
	open      bool        // accept mail without AUTH

	mu         sync.Mutex
	srv        *smtp.Server
	ln         net.Listener
	done       chan struct{} // closed when Serve has returned
	msgs       []received
	rejectRcpt map[string]int // recipient → SMTP code
	tempFail   int            // transactions still to fail with 451
	dataDelay  time.Duration  // before accepting a message
	sessions   int
}

// startSMTP starts a test SMTP server on a free port of 127.0.0.1.
func startSMTP(t testing.TB) *smtpServer {
	t.Helper()
	s := newSMTP(t)
	s.start(t, "127.0.0.1:0")
	return s
}

// newSMTP prepares a server and its certificate without starting it.
func newSMTP(t testing.TB) *smtpServer {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &smtpServer{
		t:          t,
		serverTLS:  &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		clientTLS:  &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		rejectRcpt: map[string]int{},
	}
	t.Cleanup(s.stop)
	return s
}

// start listens on addr and serves until stop.
func (s *smtpServer) start(t testing.TB, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port of a server just stopped is free at once (the listener is
	// closed); retry briefly in case the kernel is slow to release it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("smtp test server: listen on %s: %v", addr, err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	switch {
	case s.implicit:
		ln = tls.NewListener(ln, s.serverTLS)
	case !s.noTLS:
		srv.TLSConfig = s.serverTLS
	}
	srv.AllowInsecureAuth = false
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 10
	srv.ErrorLog = discardLogger{}
	done := make(chan struct{})
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv = srv
	s.ln = ln
	s.done = done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// stop closes the listener and every connection, and waits for the
// server's goroutine. It is idempotent.
func (s *smtpServer) stop() {
	s.mu.Lock()
	srv, ln, done := s.srv, s.ln, s.done
	s.srv, s.ln, s.done = nil, nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	// Serve registers its listener with the server only once running:
	// close it here too, in case Close came first.
	_ = ln.Close()
	<-done
}

// restart starts the server again on the address it had.
func (s *smtpServer) restart(t testing.TB) {
	t.Helper()
	s.start(t, s.addr)
}

// messages returns a copy of what the server accepted.
func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// reject makes the server answer RCPT TO:<addr> with code.
func (s *smtpServer) reject(addr string, code int) {
	s.mu.Lock()
	s.rejectRcpt[addr] = code
	s.mu.Unlock()
}

// failNext makes the next n transactions fail with 451 at DATA.
func (s *smtpServer) failNext(n int) {
	s.mu.Lock()
	s.tempFail = n
	s.mu.Unlock()
}

// delayData makes the server wait d before accepting each message.
func (s *smtpServer) delayData(d time.Duration) {
	s.mu.Lock()
	s.dataDelay = d
	s.mu.Unlock()
}

func (s *smtpServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	return &smtpSession{srv: s, conn: c}, nil
}

// smtpSession is one client's session.
type smtpSession struct {
	srv      *smtpServer
	conn     *smtp.Conn
	authed   bool
	from, to string
}

func (ss *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != smtpUser || password != smtpPassword {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed && !ss.srv.open {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.srv.mu.Lock()
	code := ss.srv.rejectRcpt[to]
	ss.srv.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "no such mailbox"}
	}
	ss.to = to
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.srv.mu.Lock()
	delay := ss.srv.dataDelay
	fail := ss.srv.tempFail > 0
	if fail {
		ss.srv.tempFail--
	}
	ss.srv.mu.Unlock()
	if fail {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparsable message: " + err.Error()}
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "bad subject: " + err.Error()}
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "bad body: " + err.Error()}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	rec := received{
		from:      ss.from,
		to:        ss.to,
		tls:       isTLS,
		auth:      ss.authed,
		header:    msg.Header,
		subject:   subject,
		body:      string(body),
		messageID: strings.Trim(msg.Header.Get("Message-ID"), "<>"),
		raw:       raw,
	}
	ss.srv.mu.Lock()
	ss.srv.msgs = append(ss.srv.msgs, rec)
	ss.srv.mu.Unlock()
	return nil
}

func (ss *smtpSession) Reset()        { ss.from, ss.to = "", "" }
func (ss *smtpSession) Logout() error { return nil }

// discardLogger silences the server's connection errors (expected when a
// test stops it under a client).
type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}

// selfSigned returns a certificate for 127.0.0.1 and localhost, and a pool
// that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ringcast test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
