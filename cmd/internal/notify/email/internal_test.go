package email

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ringcast/ringcast/cmd/internal/notify"
)

// testDB is a DB value for New's checks; nothing is queried.
var testDB = &notify.DB{SQL: nil}

func TestConfig(t *testing.T) {
	ok := Config{Addr: "127.0.0.1:25", From: "Ringcast <ringcast@example.com>"}
	cfg, from, host, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if from.Address != "ringcast@example.com" || host != "127.0.0.1" || cfg.TLS != TLSAuto ||
		cfg.Delay != DefaultDelay || cfg.MaxConcurrent != 4 || cfg.PerUserPerHour != 10 || cfg.DigestAfter != 2 ||
		cfg.BackoffMin != time.Second || cfg.BackoffMax != 15*time.Minute || cfg.MaxAttempts != 12 || cfg.Node == "" {
		t.Errorf("defaults %+v", cfg)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no addr", Config{From: "a@b.c"}, "no SMTP server"},
		{"no port", Config{Addr: "mail.example.com", From: "a@b.c"}, "want host:port"},
		{"no from", Config{Addr: "mail.example.com:25"}, "no sender address"},
		{"bad from", Config{Addr: "mail.example.com:25", From: "not an address"}, "sender address"},
		{"bad tls", Config{Addr: "mail.example.com:25", From: "a@b.c", TLS: "sometimes"}, "invalid SMTP TLS mode"},
		{"password alone", Config{Addr: "mail.example.com:25", From: "a@b.c", Password: "x"}, "without a user name"},
		{"clear credentials", Config{Addr: "mail.example.com:25", From: "a@b.c", TLS: TLSNone, Username: "u", Password: "p"}, "refusing to send SMTP credentials in clear text"},
		{"backoff", Config{Addr: "mail.example.com:25", From: "a@b.c", BackoffMin: time.Minute, BackoffMax: time.Second}, "below BackoffMin"},
		{"negative", Config{Addr: "mail.example.com:25", From: "a@b.c", Delay: -time.Second}, "negative Delay"},
	} {
		_, _, _, err := tc.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// Credentials in clear text to a loopback relay are fine.
	for _, addr := range []string{"127.0.0.1:25", "localhost:25", "[::1]:25"} {
		c := Config{Addr: addr, From: "a@b.c", TLS: TLSNone, Username: "u", Password: "p"}
		if _, _, _, err := c.withDefaults(); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if _, err := New(nil, ok); err == nil {
		t.Error("New without a database succeeded")
	}
	if _, err := New(testDB, ok); err == nil {
		t.Error("New with a DB without *sql.DB succeeded")
	}
}

func TestParseTLSMode(t *testing.T) {
	for in, want := range map[string]TLSMode{"": TLSAuto, "auto": TLSAuto, "REQUIRE": TLSRequire, " tls ": TLSImplicit, "none": TLSNone} {
		if got, err := ParseTLSMode(in); err != nil || got != want {
			t.Errorf("ParseTLSMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseTLSMode("starttls"); err == nil {
		t.Error("ParseTLSMode(starttls) succeeded")
	}
}

func TestBackoff(t *testing.T) {
	s := &Sender{cfg: Config{BackoffMin: time.Second, BackoffMax: 15 * time.Minute}}
	for attempt := 1; attempt <= 40; attempt++ {
		ceiling := min(time.Second<<min(attempt-1, 30), 15*time.Minute)
		var maxSeen time.Duration
		for range 200 {
			d := s.backoff(attempt)
			if d < time.Second || d > ceiling {
				t.Fatalf("attempt %d: backoff %v outside [1s, %v]", attempt, d, ceiling)
			}
			maxSeen = max(maxSeen, d)
		}
		if attempt >= 3 && maxSeen < ceiling/2 {
			t.Errorf("attempt %d: no backoff above %v in 200 draws (ceiling %v): not jittered over the range", attempt, maxSeen, ceiling)
		}
	}
	if d := s.backoff(1); d != time.Second {
		t.Errorf("first backoff %v, want BackoffMin", d)
	}
}

func TestCompose(t *testing.T) {
	from, _ := mail.ParseAddress("Rîngcast Notes <notify@example.com>")
	to, _ := mail.ParseAddress("bob@example.com")
	date := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := "Hello bob,\nünïcode line " + strings.Repeat("long ", 40) + "\n.\nend"
	data, err := compose(from, to, "New notification in alerts\r\nBcc: evil@example.com — ✓", body, "id1@example.com", date)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes", len(line))
		}
		if strings.Contains(line, "\n") {
			t.Errorf("bare LF in %q", line)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" {
		t.Error("a header was injected through the subject")
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "New notification in alerts  Bcc: evil@example.com — ✓" {
		t.Errorf("subject %q, %v", subject, err)
	}
	gotFrom, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil || gotFrom.Name != "Rîngcast Notes" {
		t.Errorf("From %q: %v", msg.Header.Get("From"), err)
	}
	if got := msg.Header.Get("Message-ID"); got != "<id1@example.com>" {
		t.Errorf("Message-ID %q", got)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(date) {
		t.Errorf("Date %v, %v", d, err)
	}
	decoded, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(string(decoded), "\r\n", "\n"); strings.TrimRight(got, "\n") != body {
		t.Errorf("body %q, want %q", got, body)
	}
}

func TestRender(t *testing.T) {
	full := reminder{user: "bob", delay: 10 * time.Minute, topics: []topicUnread{
		{topic: "alerts", readSeq: 4, head: 5, latest: []excerpt{{seq: 5, data: []byte(`"disk\nfull"`)}}},
	}}
	subject, body := full.render()
	if subject != "New notification in alerts" || !strings.Contains(body, "  disk\n  full") || !strings.Contains(body, "10m0s") {
		t.Errorf("%q\n%s", subject, body)
	}
	long := strings.Repeat("é", 500)
	var topics []topicUnread
	for i := range 30 {
		topics = append(topics, topicUnread{topic: "t" + string(rune('a'+i%26)) + string(rune('a'+i/26)), readSeq: 0, head: uint64(i + 1),
			latest: []excerpt{{seq: uint64(i + 1), data: []byte(`{"text":"` + long + `"}`)}}})
	}
	if !isDigest(topics, 2) || isDigest(topics[:1], 2) || !isDigest(topics[5:6], 2) {
		t.Error("isDigest")
	}
	subject, body = reminder{user: "bob", topics: topics, digest: true, link: "https://x.test/"}.render()
	if subject != "465 unread notifications in 30 topics" {
		t.Errorf("subject %q", subject)
	}
	if !strings.Contains(body, "… and 5 more topics.") || strings.Contains(body, long) || !strings.Contains(body, "https://x.test/") {
		t.Errorf("digest:\n%s", body)
	}
	if n := strings.Count(body, "\n"); n > 120 {
		t.Errorf("digest of %d lines", n)
	}
	if got := trimRunes("abc\x00def", 100); got != "abcdef" {
		t.Errorf("trimRunes dropped no control character: %q", got)
	}
	if got := trimRunes("ééééé", 3); got != "éé…" {
		t.Errorf("trimRunes %q", got)
	}
	if got := notificationText([]byte{0xff, 'a'}); got != "\uFFFDa" {
		t.Errorf("notificationText %q", got)
	}
}

func TestClassify(t *testing.T) {
	perm := rejectPermanently("rcpt", &textproto.Error{Code: 550, Msg: "no such user"})
	if !isPermanent(perm) || !strings.Contains(perm.Error(), "rcpt") || !strings.Contains(perm.Error(), "550") {
		t.Errorf("550: %v", perm)
	}
	if isPermanent(rejectPermanently("data", &textproto.Error{Code: 451, Msg: "later"})) {
		t.Error("451 is permanent")
	}
	if isPermanent(rejectPermanently("data", errors.New("EOF"))) {
		t.Error("EOF is permanent")
	}
	a := plainAuth{user: "u", password: "p"}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: false}); err == nil {
		t.Error("AUTH PLAIN over clear text to a remote server")
	}
	proto, resp, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: true})
	if err != nil || proto != "PLAIN" || string(resp) != "\x00u\x00p" {
		t.Errorf("PLAIN: %q %q %v", proto, resp, err)
	}
	if !retryableTx(fmt.Errorf("scheduling: %w", &pgconn.PgError{Code: "40P01"})) || retryableTx(&pgconn.PgError{Code: "23505"}) || retryableTx(errors.New("SQLSTATE 40P01")) {
		t.Error("retryableTx")
	}
	if !isLoopback("127.0.0.2") || !isLoopback("LOCALHOST") || isLoopback("10.0.0.1") || isLoopback("example.com") {
		t.Error("isLoopback")
	}
}
