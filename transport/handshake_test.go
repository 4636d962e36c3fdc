package transport

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func nopHandler() Handler { return HandlerFunc(func(string, FrameType, []byte) {}) }

// refusedPair starts a dialer a and a listener b, sends one frame from a
// to b, and waits until both logged a refusal wrapping want. It returns
// the logs and b's recorder.
func refusedPair(t *testing.T, cfgA, cfgB Config, want error) (logsA, logsB *logCapture, rb *recorder) {
	t.Helper()
	logsA, logsB, rb = &logCapture{}, &logCapture{}, &recorder{}
	cfgA.Logger, cfgB.Logger, cfgB.Handler = slog.New(logsA), slog.New(logsB), rb
	a := start(t, cfgA)
	b := start(t, cfgB)
	if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return logsA.count(slog.LevelWarn, want) >= 1 })
	if s := a.Stats().Peers["b"]; s.Dials != 0 || s.Connected || s.Sent[frameSeq] != 0 {
		t.Fatalf("refused link has stats %+v", s)
	}
	if rb.n.Load() != 0 {
		t.Fatal("a refused dialer delivered a frame")
	}
	return logsA, logsB, rb
}

func TestClusterMismatchRefused(t *testing.T) {
	cfgA := testConfig("a", nopHandler(), nil)
	cfgA.ClusterName = "blue"
	cfgB := testConfig("b", nil, nil)
	cfgB.ClusterName = "green"
	logsA, logsB, _ := refusedPair(t, cfgA, cfgB, ErrClusterMismatch)

	// The listener refuses at Warn and the dialer keeps retrying with
	// backoff (the repetitions are logged quietly).
	waitFor(t, 5*time.Second, func() bool { return logsB.count(slog.LevelWarn, ErrClusterMismatch) >= 3 })
	waitFor(t, 5*time.Second, func() bool { return logsA.count(slog.LevelDebug, ErrClusterMismatch) >= 2 })
	text := logsA.lastErrText(ErrClusterMismatch)
	for _, want := range []string{`"a" is in cluster "blue"`, `"b" is in cluster "green"`, `refused by "b"`} {
		if !strings.Contains(text, want) {
			t.Fatalf("dialer logged %q, missing %q", text, want)
		}
	}
}

func TestSecretMismatchRefused(t *testing.T) {
	cfgA := testConfig("a", nopHandler(), nil)
	cfgA.Secret = []byte("one")
	cfgB := testConfig("b", nil, nil)
	cfgB.Secret = []byte("two")
	logsA, _, _ := refusedPair(t, cfgA, cfgB, ErrAuth)
	if text := logsA.lastErrText(ErrAuth); !strings.Contains(text, "different secret") {
		t.Fatalf("logged %q", text)
	}
}

func TestSecretOnOneSideOnlyRefused(t *testing.T) {
	t.Run("listener only", func(t *testing.T) {
		cfgB := testConfig("b", nil, nil)
		cfgB.Secret = []byte("s")
		logsA, _, _ := refusedPair(t, testConfig("a", nopHandler(), nil), cfgB, ErrAuth)
		if text := logsA.lastErrText(ErrAuth); !strings.Contains(text, "requires a shared secret") {
			t.Fatalf("logged %q", text)
		}
	})
	t.Run("dialer only", func(t *testing.T) {
		cfgA := testConfig("a", nopHandler(), nil)
		cfgA.Secret = []byte("s")
		logsA, _, _ := refusedPair(t, cfgA, testConfig("b", nil, nil), ErrAuth)
		if text := logsA.lastErrText(ErrAuth); !strings.Contains(text, "did not prove") {
			t.Fatalf("logged %q", text)
		}
	})
}

func TestSharedSecretAccepted(t *testing.T) {
	var rb recorder
	cfgA := testConfig("a", nopHandler(), nil)
	cfgA.Secret = []byte("shared")
	cfgB := testConfig("b", &rb, nil)
	cfgB.Secret = []byte("shared")
	a := start(t, cfgA)
	b := start(t, cfgB)
	if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
}

func TestListenerRefusesBadProof(t *testing.T) {
	logs := &logCapture{}
	cfg := testConfig("b", nopHandler(), logs)
	cfg.Secret = []byte("right")
	b := start(t, cfg)

	for _, secret := range [][]byte{nil, []byte("wrong")} {
		c := rawDial(t, b.Addr())
		nonce := newNonce()
		c.send(t, &hello{Cluster: DefaultClusterName, Node: "mallory", Version: testVersion, Nonce: nonce})
		ack := c.readAck(t)
		if ack.Err != "" || len(ack.Proof) == 0 {
			t.Fatalf("HelloAck: %+v", ack)
		}
		var p proof
		if secret != nil {
			p.Proof = computeProof(secret, roleDialer, DefaultClusterName, "mallory", "b", nonce, ack.Nonce)
		}
		c.send(t, &p)
		// The refusal arrives after the handshake as a HelloAck with Err.
		refusal := c.readAck(t)
		if !strings.HasPrefix(refusal.Err, ErrAuth.Error()) {
			t.Fatalf("refusal: %q", refusal.Err)
		}
		c.waitClosed(t)
	}
	waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrAuth) == 2 })
	if _, ok := b.Stats().Peers["mallory"]; ok {
		t.Fatal("an unauthenticated peer appears in Stats")
	}
}

func TestListenerRefusesBadHello(t *testing.T) {
	logs := &logCapture{}
	b := start(t, testConfig("b", nopHandler(), logs))
	good := func() *hello {
		return &hello{Cluster: DefaultClusterName, Node: "c", Version: testVersion, Nonce: newNonce()}
	}
	cases := []struct {
		name string
		edit func(h *hello)
		want error
	}{
		{"version", func(h *hello) { h.Version = testVersion + 1 }, ErrVersionMismatch},
		{"cluster", func(h *hello) { h.Cluster = "other" }, ErrClusterMismatch},
		{"own name", func(h *hello) { h.Node = "b" }, ErrPeerMismatch},
		{"no name", func(h *hello) { h.Node = "" }, ErrHandshake},
		{"short nonce", func(h *hello) { h.Nonce = h.Nonce[:3] }, ErrHandshake},
	}
	for _, tc := range cases {
		c := rawDial(t, b.Addr())
		h := good()
		tc.edit(h)
		c.send(t, h)
		ack := c.readAck(t)
		if !errors.Is(refusalError(ack.Err, ack.Node), tc.want) {
			t.Errorf("%s: refusal %q does not match %v", tc.name, ack.Err, tc.want)
		}
		c.waitClosed(t)
		waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, tc.want) >= 1 })
	}

	// A frame other than Hello, and a Hello that does not decode.
	c := rawDial(t, b.Addr())
	c.send(t, &testMsg{typ: frameSeq})
	if ack := c.readAck(t); !strings.Contains(ack.Err, "got a "+frameSeq.String()+" frame, want Hello") {
		t.Fatalf("refusal %q", ack.Err)
	}
	c = rawDial(t, b.Addr())
	if _, err := c.Write([]byte{0, 0, 0, 2, byte(FrameHello), 0x07}); err != nil {
		t.Fatal(err)
	}
	if ack := c.readAck(t); !strings.Contains(ack.Err, ErrMalformed.Error()) {
		t.Fatalf("refusal %q", ack.Err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	logs := &logCapture{}
	cfg := testConfig("b", nopHandler(), logs)
	cfg.HandshakeTimeout = 150 * time.Millisecond
	b := start(t, cfg)

	// Silent client: refused after HandshakeTimeout.
	c := rawDial(t, b.Addr())
	begin := time.Now()
	ack := c.readAck(t)
	if !strings.Contains(ack.Err, "no Hello within 150ms") {
		t.Fatalf("refusal %q", ack.Err)
	}
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Fatalf("refused after %v, before HandshakeTimeout", d)
	}
	c.waitClosed(t)
	waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrHandshake) == 1 })

	// Client that stops after Hello: refused for the missing Proof.
	c = rawDial(t, b.Addr())
	c.send(t, &hello{Cluster: DefaultClusterName, Node: "c", Version: testVersion, Nonce: newNonce()})
	c.readAck(t)
	if ack := c.readAck(t); !strings.Contains(ack.Err, "no Proof within") {
		t.Fatalf("refusal %q", ack.Err)
	}
}

func TestDialerRefusesWrongListener(t *testing.T) {
	t.Run("other name", func(t *testing.T) {
		logs := &logCapture{}
		a := start(t, testConfig("a", nopHandler(), logs))
		b := start(t, testConfig("b", nopHandler(), nil))
		if err := a.Send(Peer{Name: "c", Addr: b.Addr()}, seqFrame(1, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrPeerMismatch) == 1 })
		if text := logs.lastErrText(ErrPeerMismatch); !strings.Contains(text, `dialled "c", the listener is "b"`) {
			t.Fatalf("logged %q", text)
		}
	})
	t.Run("other version", func(t *testing.T) {
		logs := &logCapture{}
		a := start(t, testConfig("a", nopHandler(), logs))
		f := newFakeListener(t, func(c *rawConn) { acceptAs(c, "b", testVersion+1) })
		if err := a.Send(Peer{Name: "b", Addr: f.addr()}, seqFrame(1, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrVersionMismatch) == 1 })
		if s := a.Stats().Peers["b"]; s.Dials != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("silent listener", func(t *testing.T) {
		logs := &logCapture{}
		cfg := testConfig("a", nopHandler(), logs)
		cfg.HandshakeTimeout = 100 * time.Millisecond
		a := start(t, cfg)
		f := newFakeListener(t, func(c *rawConn) { _, _, _ = c.read(); _, _, _ = c.read() })
		if err := a.Send(Peer{Name: "b", Addr: f.addr()}, seqFrame(1, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrHandshake) == 1 })
		if !isTimeout(logs.firstErr(ErrHandshake)) {
			t.Fatalf("logged %v, want a timeout", logs.firstErr(ErrHandshake))
		}
	})
}

func TestIdleTimeouts(t *testing.T) {
	t.Run("pings keep an idle link up", func(t *testing.T) {
		var rb recorder
		cfgA := testConfig("a", nopHandler(), nil)
		cfgA.IdleTimeout = 150 * time.Millisecond
		cfgB := testConfig("b", &rb, nil)
		cfgB.IdleTimeout = 150 * time.Millisecond
		a := start(t, cfgA)
		b := start(t, cfgB)
		if err := a.Send(peerOf(b), seqFrame(1, 1)); err != nil {
			t.Fatal(err)
		}
		// Wait for several idle timeouts' worth of pings.
		waitFor(t, 5*time.Second, func() bool { return b.Stats().Peers["a"].Received[FramePing] >= 8 })
		s := a.Stats().Peers["b"]
		if s.Dials != 1 || !s.Connected || s.Received[FramePing] < 6 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("dialer drops a listener that stops answering", func(t *testing.T) {
		logs := &logCapture{}
		cfg := testConfig("a", nopHandler(), logs)
		cfg.IdleTimeout = 150 * time.Millisecond
		a := start(t, cfg)
		// Completes the handshake, then reads and never answers.
		f := newFakeListener(t, func(c *rawConn) {
			if acceptAs(c, "b", testVersion) {
				_ = c.SetDeadline(time.Time{})
				for {
					if _, _, err := c.read(); err != nil {
						return
					}
				}
			}
		})
		if err := a.Send(Peer{Name: "b", Addr: f.addr()}, seqFrame(1, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return a.Stats().Peers["b"].Dials >= 2 })
		if f.n.Load() < 2 {
			t.Fatal("no reconnect")
		}
	})
	t.Run("listener drops a silent dialer", func(t *testing.T) {
		cfg := testConfig("b", nopHandler(), nil)
		cfg.IdleTimeout = 150 * time.Millisecond
		b := start(t, cfg)
		c := rawDial(t, b.Addr())
		c.handshake(t, DefaultClusterName, "c", "b", nil)
		begin := time.Now()
		c.waitClosed(t)
		if d := time.Since(begin); d < 100*time.Millisecond {
			t.Fatalf("closed after %v, before IdleTimeout", d)
		}
	})
}

func TestRefusalError(t *testing.T) {
	err := refusalError(ErrClusterMismatch.Error()+`: "a" is in cluster "x"`, "b")
	if !errors.Is(err, ErrClusterMismatch) || err.Error() != `transport: cluster name mismatch: "a" is in cluster "x" (refused by "b")` {
		t.Fatalf("err = %v", err)
	}
	err = refusalError("something else", "b")
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "something else") {
		t.Fatalf("err = %v", err)
	}
	if err := refusalError(strings.Repeat("x", 10000), "b"); len(err.Error()) > 2*maxRefusalText {
		t.Fatalf("refusal text not bounded: %d bytes", len(err.Error()))
	}
}

// handshakeMessages returns handshake frames of every type.
func handshakeMessages() []Message {
	return []Message{
		&hello{Cluster: "ringcast", Node: "a", Version: testVersion, Nonce: make([]byte, nonceSize), link: linkVersion},
		&hello{Cluster: strings.Repeat("c", 300), Node: strings.Repeat("n", 40), Version: 255, Nonce: bytes.Repeat([]byte{7}, 300), link: linkVersion},
		&helloAck{Node: "b", Version: 1, Nonce: []byte{1, 2}, Proof: make([]byte, 32), Err: "x", link: linkVersion},
		&helloAck{Node: "b", Nonce: make([]byte, nonceSize), link: linkVersion},
		&proof{},
		&proof{Proof: []byte{9, 9}},
	}
}

// newHandshakeMessage returns a zero handshake message of type t, or nil.
func newHandshakeMessage(t FrameType) interface {
	Message
	DecodeBody([]byte) error
} {
	switch t {
	case FrameHello:
		return new(hello)
	case FrameHelloAck:
		return new(helloAck)
	case FrameProof:
		return new(proof)
	}
	return nil
}

func TestHandshakeMessageRoundTrip(t *testing.T) {
	for _, m := range handshakeMessages() {
		body := m.AppendBody(nil)
		got := newHandshakeMessage(m.FrameType())
		if err := got.DecodeBody(body); err != nil {
			t.Fatalf("%v: decode: %v", m.FrameType(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: round trip changed the message:\n got %+v\nwant %+v", m.FrameType(), got, m)
		}
		for i := range body {
			if err := newHandshakeMessage(m.FrameType()).DecodeBody(body[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v truncated to %d of %d bytes: err = %v, want ErrMalformed", m.FrameType(), i, len(body), err)
			}
		}
		if err := newHandshakeMessage(m.FrameType()).DecodeBody(append(body, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v with a trailing byte: err = %v", m.FrameType(), err)
		}
	}
}

// A later version may append fields to a handshake frame: they are skipped,
// so that the version it announces can still be read and refused.
func TestHandshakeSkipsUnknownTrailingFields(t *testing.T) {
	body := (&hello{Cluster: "c", Node: "n", Version: 9, Nonce: []byte{1}}).AppendBody(nil)
	body = append([]byte{0x97}, body[1:]...)
	body = append(body, 0x82, 0xa1, 'k', 0x92, 0xc3, 0xc0, 0xa0, 0xc0, 0xd5, 1, 0xaa, 0xbb)
	var h hello
	if err := h.DecodeBody(body); err != nil || h.Version != 9 || h.Node != "n" {
		t.Fatalf("DecodeBody = %+v, %v", h, err)
	}
	for name, bad := range map[string][]byte{
		"too few fields":  {0x93, 0xa0, 0xa0, 1},
		"nil":             {0xc0},
		"version too big": {0x94, 0xa0, 0xa0, 0xcd, 1, 0, 0xc0},
		"not an array":    {0x07},
	} {
		if err := h.DecodeBody(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// The protocol version is the Config's: zero is a version like any other,
// and ends speaking different versions refuse each other.
func TestProtocolVersionFromConfig(t *testing.T) {
	t.Run("zero", func(t *testing.T) {
		var rb recorder
		cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", &rb, nil)
		cfgA.ProtocolVersion, cfgB.ProtocolVersion = 0, 0
		a, b := start(t, cfgA), start(t, cfgB)
		if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
	})
	t.Run("different", func(t *testing.T) {
		cfgA := testConfig("a", nopHandler(), nil)
		cfgA.ProtocolVersion = 0
		logsA, _, _ := refusedPair(t, cfgA, testConfig("b", nil, nil), ErrVersionMismatch)
		if text := logsA.lastErrText(ErrVersionMismatch); !strings.Contains(text, `"a" speaks protocol version 0, "b" speaks 7`) {
			t.Fatalf("logged %q", text)
		}
	})
}

// v1Body returns m's body as link protocol version 1 sent it: without the
// trailing link version field.
func v1Body(t *testing.T, m Message) []byte {
	body := m.AppendBody(nil)
	// The version is the last field: a msgpack uint8, 0xcc and a byte.
	if body[0]&0xf0 != 0x90 || !bytes.HasSuffix(body, []byte{0xcc, linkVersion}) {
		t.Fatalf("unexpected encoding % x", body)
	}
	return append([]byte{body[0] - 1}, body[1:len(body)-2]...)
}

// A peer speaking link protocol version 1, which did not seal frames, is
// told that it speaks another version, on either side of a link.
func TestOldLinkVersionRefused(t *testing.T) {
	t.Run("dialer", func(t *testing.T) {
		b := start(t, testConfig("b", nopHandler(), nil))
		c := rawDial(t, b.Addr())
		if _, err := c.Write(AppendFrame(nil, FrameHello, v1Body(t, &hello{Cluster: DefaultClusterName, Node: "old", Version: testVersion, Nonce: newNonce()}))); err != nil {
			t.Fatal(err)
		}
		ack := c.readAck(t)
		if !strings.HasPrefix(ack.Err, ErrVersionMismatch.Error()) || !strings.Contains(ack.Err, `"old" speaks link protocol version 1, "b" speaks 2`) {
			t.Fatalf("HelloAck.Err = %q", ack.Err)
		}
	})
	t.Run("listener", func(t *testing.T) {
		logs := &logCapture{}
		a := start(t, testConfig("a", nopHandler(), logs))
		f := newFakeListener(t, func(c *rawConn) {
			if typ, _, err := c.read(); err != nil || typ != FrameHello {
				return
			}
			_, _ = c.Write(AppendFrame(nil, FrameHelloAck, v1Body(t, &helloAck{Node: "b", Version: testVersion, Nonce: newNonce()})))
			_, _, _ = c.read()
		})
		if err := a.Send(Peer{Name: "b", Addr: f.addr()}, seqFrame(1, 8)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrVersionMismatch) >= 1 })
		if text := logs.lastErrText(ErrVersionMismatch); !strings.Contains(text, "link protocol version 1") {
			t.Fatalf("logged %q", text)
		}
	})
	t.Run("explicit zero", func(t *testing.T) {
		body := (&hello{Cluster: "c", Node: "n", Nonce: []byte{1}}).AppendBody(nil)
		body[len(body)-1] = 0
		if err := new(hello).DecodeBody(body); !errors.Is(err, ErrMalformed) {
			t.Fatalf("link version 0: err = %v", err)
		}
	})
}
