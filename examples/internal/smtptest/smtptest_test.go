package smtptest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/examples/internal/smtptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testMessage = "From: <a@example.test>\r\n" +
	"To: <b@example.test>\r\n" +
	"Subject: =?utf-8?q?caf=C3=A9?=\r\n" +
	"Message-ID: <id-1@example.test>\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"caf=C3=A9 au lait\r\n"

// send delivers testMessage from a@example.test to rcpt, with STARTTLS and
// AUTH when tls is set.
func send(t *testing.T, srv *smtptest.Server, rcpt string, tls bool) error {
	t.Helper()
	dial := smtp.Dial
	if tls {
		dial = func(addr string) (*smtp.Client, error) { return smtp.DialStartTLS(addr, srv.ClientTLS()) }
	}
	c, err := dial(srv.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if tls {
		if err := c.Auth(sasl.NewPlainClient("", smtptest.User, smtptest.Password)); err != nil {
			return err
		}
	}
	if err := c.SendMail("a@example.test", []string{rcpt}, strings.NewReader(testMessage)); err != nil {
		return err
	}
	return c.Quit()
}

// TestRecords: a message sent over STARTTLS with AUTH is recorded with its
// envelope, decoded subject and body, and Message-ID.
func TestRecords(t *testing.T) {
	srv := smtptest.Start(t)
	if err := send(t, srv, "b@example.test", true); err != nil {
		t.Fatalf("send: %v", err)
	}
	msgs := srv.To("b@example.test")
	if len(msgs) != 1 {
		t.Fatalf("%d messages to b, want 1: %+v", len(msgs), srv.Messages())
	}
	m := msgs[0]
	if m.From != "a@example.test" || !m.TLS || !m.Auth {
		t.Errorf("from=%q tls=%v auth=%v; want a@example.test, true, true", m.From, m.TLS, m.Auth)
	}
	if m.Subject != "café" || m.Body != "café au lait\r\n" || m.MessageID != "id-1@example.test" {
		t.Errorf("subject %q, body %q, Message-ID %q", m.Subject, m.Body, m.MessageID)
	}
	srv.CheckOnce(t)
}

// TestAuthRequired: without AUTH the default server refuses mail; an Open
// one without STARTTLS accepts it in clear.
func TestAuthRequired(t *testing.T) {
	srv := smtptest.Start(t)
	var se *smtp.SMTPError
	if err := send(t, srv, "b@example.test", false); !errors.As(err, &se) || se.Code != smtp.ErrAuthRequired.Code {
		t.Errorf("send without AUTH: %v; want %d", err, smtp.ErrAuthRequired.Code)
	}
	open := smtptest.New(t)
	open.Open, open.NoTLS = true, true
	open.Start(t, "127.0.0.1:0")
	if err := send(t, open, "b@example.test", false); err != nil {
		t.Fatalf("send to an open server: %v", err)
	}
	if m := open.Messages(); len(m) != 1 || m[0].TLS || m[0].Auth {
		t.Errorf("open server recorded %+v; want one message, no TLS, no AUTH", m)
	}
}

// TestFailures: Reject and FailNext refuse with the codes asked for, and
// a stopped server restarts on its address.
func TestFailures(t *testing.T) {
	srv := smtptest.Start(t)
	srv.Reject("nobody@example.test", 550)
	srv.FailNext(1)
	var se *smtp.SMTPError
	if err := send(t, srv, "nobody@example.test", true); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("send to a rejected recipient: %v; want 550", err)
	}
	if err := send(t, srv, "b@example.test", true); !errors.As(err, &se) || se.Code != 451 {
		t.Errorf("send after FailNext: %v; want 451", err)
	}
	addr := srv.Addr()
	srv.Stop()
	srv.Stop()
	if err := send(t, srv, "b@example.test", true); err == nil {
		t.Errorf("send to a stopped server succeeded")
	}
	srv.Restart(t)
	if srv.Addr() != addr {
		t.Errorf("restarted on %s, want %s", srv.Addr(), addr)
	}
	if err := send(t, srv, "b@example.test", true); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}
