package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// permanentError is a rejection of one email that no retry can cure: a 5xx
// answer to RCPT or to the message itself, or an address that does not
// parse. It fails the email at once and does not count against the
// server's circuit breaker (the server is working).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// isPermanent reports whether err fails its email for good.
func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// phaseError names the step of the SMTP transaction that failed.
func phaseError(phase string, err error) error {
	return fmt.Errorf("%s: %w", phase, err)
}

// rejectPermanently wraps err as permanent when the server answered it
// with a 5xx code.
func rejectPermanently(phase string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return &permanentError{phaseError(phase, err)}
	}
	return phaseError(phase, err)
}

// envelope is one email ready for the SMTP transaction.
type envelope struct {
	from string // envelope sender (MAIL FROM)
	to   string // envelope recipient (RCPT TO)
	data []byte // the message, headers and body, CRLF line ends
}

// transmit runs one SMTP transaction: connect, EHLO, STARTTLS as the mode
// says, AUTH PLAIN when configured, MAIL, RCPT, DATA. It returns nil once
// the server has accepted the message. A 5xx to RCPT or DATA comes back as
// a permanentError; every other failure (connection, TLS, 4xx, a 5xx to
// the session's set-up, which is a configuration problem rather than this
// email's) is worth retrying. The whole transaction is bounded by
// SendTimeout; ctx only bounds dialling.
func (s *Sender) transmit(ctx context.Context, env envelope) (err error) {
	timeout := s.cfg.SendTimeout
	dialer := net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return phaseError("connect", err)
	}
	// One deadline for the whole transaction, and a watchdog closing the
	// connection in case TLS wraps it in a way that hides the deadline.
	deadline := time.Now().Add(timeout)
	_ = conn.SetDeadline(deadline)
	watchdog := time.AfterFunc(timeout, func() { conn.Close() })
	defer watchdog.Stop()

	tlsConf := s.tlsConfig()
	secure := false
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return phaseError("tls", err)
		}
		conn, secure = tc, true
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return phaseError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return phaseError("ehlo", err)
	}
	if !secure && s.cfg.TLS != TLSNone {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			if err := c.StartTLS(tlsConf); err != nil {
				return phaseError("starttls", err)
			}
			secure = true
		case s.cfg.TLS == TLSRequire:
			return phaseError("starttls", fmt.Errorf("the server does not offer STARTTLS, which TLS mode %q requires", TLSRequire))
		}
	}
	if s.cfg.Username != "" {
		if !secure && !isLoopback(s.host) {
			return phaseError("auth", fmt.Errorf("refusing to send credentials in clear text to %s: the server offers no STARTTLS", s.host))
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return phaseError("auth", errors.New("the server does not offer AUTH"))
		}
		if err := c.Auth(plainAuth{user: s.cfg.Username, password: s.cfg.Password, allowClear: isLoopback(s.host)}); err != nil {
			return phaseError("auth", err)
		}
	}
	if err := c.Mail(env.from); err != nil {
		return phaseError("mail", err)
	}
	if err := c.Rcpt(env.to); err != nil {
		return rejectPermanently("rcpt", err)
	}
	w, err := c.Data()
	if err != nil {
		return rejectPermanently("data", err)
	}
	if _, err := w.Write(env.data); err != nil {
		w.Close()
		return phaseError("data", err)
	}
	if err := w.Close(); err != nil {
		return rejectPermanently("data", err)
	}
	// The server has accepted the message: what QUIT says no longer
	// matters.
	_ = c.Quit()
	return nil
}

// tlsConfig is the client TLS configuration for the server.
func (s *Sender) tlsConfig() *tls.Config {
	var conf *tls.Config
	if s.cfg.TLSConfig != nil {
		conf = s.cfg.TLSConfig.Clone()
	} else {
		conf = &tls.Config{}
	}
	if conf.ServerName == "" {
		conf.ServerName = s.host
	}
	if conf.MinVersion == 0 {
		conf.MinVersion = tls.VersionTLS12
	}
	return conf
}

// plainAuth is AUTH PLAIN (RFC 4616) that sends the credentials only over
// TLS, or to a server on the loopback interface.
type plainAuth struct {
	user, password string
	allowClear     bool
}

// Start implements smtp.Auth.
func (a plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.allowClear {
		return "", nil, errors.New("refusing to send credentials over an unencrypted connection")
	}
	resp := make([]byte, 0, 2+len(a.user)+len(a.password))
	resp = append(resp, 0)
	resp = append(resp, a.user...)
	resp = append(resp, 0)
	resp = append(resp, a.password...)
	return "PLAIN", resp, nil
}

// Next implements smtp.Auth.
func (a plainAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge during AUTH PLAIN")
	}
	return nil, nil
}

// headerText makes s safe for a header: one line of valid UTF-8, encoded
// as an RFC 2047 word when it is not plain ASCII.
func headerText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return mime.QEncoding.Encode("utf-8", s)
}

// compose builds the message of an email: the headers (Date, From, To,
// Subject, Message-ID, MIME) and a quoted-printable UTF-8 text body.
func compose(from *mail.Address, to *mail.Address, subject, body, messageID string, date time.Time) ([]byte, error) {
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("Date", date.Format(time.RFC1123Z))
	header("From", from.String())
	header("To", to.String())
	header("Subject", headerText(subject))
	header("Message-ID", "<"+messageID+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body = strings.ToValidUTF8(body, "\uFFFD")
	body = strings.ReplaceAll(body, "\r\n", "\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}
