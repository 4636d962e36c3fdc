package smtptest

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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Credentials the server accepts for AUTH PLAIN.
const (
	User     = "ringcast"
	Password = "s3cret pass"
)

// Message is one message the server accepted.
type Message struct {
	From      string      // envelope sender (MAIL FROM)
	To        string      // envelope recipient (the last RCPT TO)
	TLS       bool        // the session was encrypted (STARTTLS or implicit TLS)
	Auth      bool        // the client had authenticated
	Header    mail.Header // the message's header, as sent
	Subject   string      // the Subject header, RFC 2047 words decoded
	Body      string      // the body, quoted-printable decoded if so declared
	MessageID string      // the Message-ID header without its angle brackets
	Raw       []byte      // the message as received after DATA
}

// Server is an SMTP server on 127.0.0.1 that records what it accepts.
// Its methods are safe for concurrent use. The exported fields configure
// the next Start; set them before it.
type Server struct {
	// NoTLS makes the server offer no STARTTLS.
	NoTLS bool
	// Implicit makes the server speak TLS from the first byte (SMTPS).
	Implicit bool
	// Open makes the server accept mail without AUTH.
	Open bool

	serverTLS *tls.Config
	clientTLS *tls.Config

	mu         sync.Mutex
	addr       string
	srv        *smtp.Server
	ln         net.Listener
	done       chan struct{} // closed when Serve has returned
	msgs       []Message
	rejectRcpt map[string]int // recipient → SMTP code
	tempFail   int            // transactions still to fail with 451
	dataDelay  time.Duration  // before accepting a message
}

// Start starts a server with the default configuration on a free port of
// 127.0.0.1, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := New(t)
	s.Start(t, "127.0.0.1:0")
	return s
}

// New prepares a server and its certificate without starting it, and
// stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &Server{
		serverTLS:  &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		clientTLS:  &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		rejectRcpt: map[string]int{},
	}
	t.Cleanup(s.Stop)
	return s
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves until
// Stop. A port just released by Stop is retried for a few seconds. It
// fails the test if the server is already running or cannot listen.
func (s *Server) Start(t testing.TB, addr string) {
	t.Helper()
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		t.Fatalf("smtptest: Start on a running server (%s)", s.Addr())
	}
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("smtptest: listen on %s: %v", addr, err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	switch {
	case s.Implicit:
		ln = tls.NewListener(ln, s.serverTLS)
	case !s.NoTLS:
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
	s.srv, s.ln, s.done = srv, ln, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// Stop closes the listener and every connection, and waits for the
// server's goroutine. It is idempotent.
func (s *Server) Stop() {
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

// Restart starts the server again on the address it last had.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Start(t, s.Addr())
}

// Addr returns the host:port the server listens (or last listened) on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ClientTLS returns a client TLS configuration that trusts the server's
// certificate. Each call returns a fresh copy.
func (s *Server) ClientTLS() *tls.Config { return s.clientTLS.Clone() }

// Messages returns a copy of what the server accepted, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// To returns the messages accepted for the envelope recipient rcpt.
func (s *Server) To(rcpt string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.To == rcpt {
			out = append(out, m)
		}
	}
	return out
}

// CheckOnce fails t if a message came without a Message-ID or if any
// Message-ID was accepted more than once.
func (s *Server) CheckOnce(t testing.TB) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range s.Messages() {
		if m.MessageID == "" {
			t.Errorf("smtptest: a message to %s without a Message-ID", m.To)
			continue
		}
		seen[m.MessageID]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("smtptest: Message-ID %s received %d times", id, n)
		}
	}
}

// Reject makes the server answer RCPT TO:<rcpt> with code (a 4xx or 5xx
// SMTP reply code).
func (s *Server) Reject(rcpt string, code int) {
	s.mu.Lock()
	s.rejectRcpt[rcpt] = code
	s.mu.Unlock()
}

// FailNext makes the next n transactions fail with 451 at DATA.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.tempFail = n
	s.mu.Unlock()
}

// DelayData makes the server wait d before accepting each message.
func (s *Server) DelayData(d time.Duration) {
	s.mu.Lock()
	s.dataDelay = d
	s.mu.Unlock()
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: s, conn: c, open: s.Open}, nil
}

// session is one client's session.
type session struct {
	srv      *Server
	conn     *smtp.Conn
	open     bool // mail accepted without AUTH
	authed   bool
	from, to string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != User || password != Password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed && !ss.open {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.srv.mu.Lock()
	code := ss.srv.rejectRcpt[to]
	ss.srv.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "no such mailbox"}
	}
	ss.to = to
	return nil
}

func (ss *session) Data(r io.Reader) error {
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
	var body []byte
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body, err = io.ReadAll(quotedprintable.NewReader(msg.Body))
	} else {
		body, err = io.ReadAll(msg.Body)
	}
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "bad body: " + err.Error()}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	m := Message{
		From:      ss.from,
		To:        ss.to,
		TLS:       isTLS,
		Auth:      ss.authed,
		Header:    msg.Header,
		Subject:   subject,
		Body:      string(body),
		MessageID: strings.Trim(msg.Header.Get("Message-ID"), "<>"),
		Raw:       raw,
	}
	ss.srv.mu.Lock()
	ss.srv.msgs = append(ss.srv.msgs, m)
	ss.srv.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", "" }
func (ss *session) Logout() error { return nil }

// discardLogger silences the server's connection errors, expected when a
// test stops the server under a client.
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

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
