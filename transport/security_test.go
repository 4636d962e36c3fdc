package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// remoteConn is a connection that reports another remote address, so
// that a test on loopback can look like a peer from elsewhere.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c *remoteConn) RemoteAddr() net.Addr { return c.remote }

// remoteListener is a listener whose connections report remote as their
// remote address.
type remoteListener struct {
	net.Listener
	remote net.Addr
}

func (l *remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &remoteConn{Conn: c, remote: l.remote}, nil
}

// elsewhere is a non-loopback address (TEST-NET-1) that the tests make
// loopback connections report.
var elsewhere = &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}

// fromElsewhere makes every connection cfg's Transport accepts look like
// it came from elsewhere.
func fromElsewhere(cfg *Config) {
	cfg.wrapListener = func(ln net.Listener) net.Listener { return &remoteListener{Listener: ln, remote: elsewhere} }
}

// Without a secret or TLS, a peer that is not on loopback is refused, told
// why and how to fix it, and counted; nothing it sends is delivered.
func TestProtectedModeRefusesRemotePeers(t *testing.T) {
	cfgB := testConfig("b", nil, nil)
	fromElsewhere(&cfgB)
	logsA, logsB, _ := refusedPair(t, testConfig("a", nopHandler(), nil), cfgB, ErrProtectedMode)
	text := logsA.lastErrText(ErrProtectedMode)
	for _, want := range []string{`"a" connected from non-loopback address 192.0.2.7`, "--secret", "RINGCAST_SECRET", "--protected-mode=false", `refused by "b"`} {
		if !strings.Contains(text, want) {
			t.Errorf("dialer's error %q lacks %q", text, want)
		}
	}
	waitFor(t, 5*time.Second, func() bool { return logsB.count(slog.LevelWarn, ErrProtectedMode) >= 1 })
}

func TestProtectedModeCountsRefusals(t *testing.T) {
	cfg := testConfig("b", nopHandler(), nil)
	fromElsewhere(&cfg)
	b := start(t, cfg)
	c := rawDial(t, b.Addr())
	c.send(t, &hello{Cluster: DefaultClusterName, Node: "x", Version: testVersion, Nonce: newNonce()})
	if ack := c.readAck(t); !strings.HasPrefix(ack.Err, ErrProtectedMode.Error()) {
		t.Fatalf("HelloAck.Err = %q", ack.Err)
	}
	c.waitClosed(t)
	waitFor(t, 5*time.Second, func() bool { return b.Stats().Refused.ProtectedMode == 1 })
}

// Loopback peers, a shared secret, TLS or the explicit opt-out let remote
// peers in.
func TestProtectedModeLetsIn(t *testing.T) {
	for name, setup := range map[string]func(a, b *Config){
		"loopback": func(a, b *Config) { b.wrapListener = nil },
		"secret":   func(a, b *Config) { a.Secret, b.Secret = []byte("s3cret"), []byte("s3cret") },
		"opt-out":  func(a, b *Config) { b.InsecureAllowRemotePeers = true },
		"tls": func(a, b *Config) {
			ca := newTestCA(t)
			a.TLS, b.TLS = ca.config(t, "a"), ca.config(t, "b")
		},
	} {
		t.Run(name, func(t *testing.T) {
			var rb recorder
			cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", &rb, nil)
			fromElsewhere(&cfgB)
			setup(&cfgA, &cfgB)
			a, b := start(t, cfgA), start(t, cfgB)
			if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
		})
	}
}

// In protected mode a node does not send its unprotected frames to a peer
// that is not on loopback either.
func TestProtectedModeDoesNotDialRemotePeers(t *testing.T) {
	var rb recorder
	logsA := &logCapture{}
	cfgA := testConfig("a", nopHandler(), logsA)
	cfgA.wrapConn = func(c net.Conn) net.Conn { return &remoteConn{Conn: c, remote: elsewhere} }
	b := start(t, testConfig("b", &rb, nil))
	a := start(t, cfgA)
	if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return logsA.count(slog.LevelWarn, ErrProtectedMode) >= 1 })
	if text := logsA.lastErrText(ErrProtectedMode); !strings.Contains(text, "not dialling") {
		t.Fatalf("logged %q", text)
	}
	if rb.n.Load() != 0 || a.Stats().Peers["b"].Dials != 0 {
		t.Fatal("a protected node sent to a remote peer")
	}
}

// Connections from one address that have not finished the handshake are
// bounded: the excess is closed at once and counted, and the address can
// connect again once they are gone.
func TestMaxPendingPerAddr(t *testing.T) {
	var rb recorder
	cfg := testConfig("b", &rb, nil)
	cfg.MaxPendingPerAddr = 3
	cfg.HandshakeTimeout = time.Minute
	b := start(t, cfg)
	var idle []*rawConn
	for range 3 {
		idle = append(idle, rawDial(t, b.Addr()))
	}
	waitFor(t, 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.pending["127.0.0.1"] == 3
	})
	for range 5 {
		rawDial(t, b.Addr()).waitClosed(t)
	}
	if n := b.Stats().Refused.PendingPerAddr; n != 5 {
		t.Fatalf("Refused.PendingPerAddr = %d, want 5", n)
	}
	// A pending connection that completes its handshake frees its slot.
	idle[0].handshake(t, DefaultClusterName, "c", "b", nil)
	waitFor(t, 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.pending["127.0.0.1"] == 2
	})
	for _, c := range idle[1:] {
		_ = c.Close()
	}
	a := start(t, testConfig("a", nopHandler(), nil))
	if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
}

// heapInuse returns the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// parkFrames opens n connections to tr; on each, prelude runs and then a
// frame header claiming claim bytes is sent with a few bytes of it, and
// left unfinished. It returns the largest heap growth seen while tr
// waits for the rest, measured over a short window once every connection
// is served.
func parkFrames(t *testing.T, tr *Transport, n, claim int, prelude func(c *rawConn, i int)) uint64 {
	t.Helper()
	before := heapInuse()
	for i := range n {
		c := rawDial(t, tr.Addr())
		if prelude != nil {
			prelude(c, i)
		}
		var hdr [frameHeaderSize + 8]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(claim))
		hdr[4] = byte(frameSeq)
		if _, err := c.Write(hdr[:]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.inbound) == n && (prelude == nil || len(tr.pending) == 0)
	})
	var grown uint64
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		if h := heapInuse(); h > before && h-before > grown {
			grown = h - before
		}
	}
	return grown
}

// A crowd of connections that each claim a large frame and send a few
// bytes of it holds memory in proportion to what they sent, not to what
// they claimed: before the handshake (claims up to the handshake's
// bound) and after it (on an unauthenticated loopback link).
func TestUnfinishedFramesHoldLittleMemory(t *testing.T) {
	t.Run("handshake", func(t *testing.T) {
		const conns = 1000
		cfg := testConfig("b", nopHandler(), nil)
		cfg.MaxPendingPerAddr = conns
		cfg.HandshakeTimeout = time.Minute
		b := start(t, cfg)
		// Before the fix: 1000 x (64 KiB read buffer + 64 KiB body) = 125 MiB.
		grown := parkFrames(t, b, conns, maxHandshakeFrame, nil)
		t.Logf("heap grew %.1f MiB for %d unfinished handshakes", float64(grown)/(1<<20), conns)
		if grown > 70<<20 {
			t.Fatalf("heap grew %d MiB for %d unfinished handshakes", grown>>20, conns)
		}
	})
	t.Run("authenticated", func(t *testing.T) {
		const conns = 300
		b := start(t, testConfig("b", nopHandler(), nil))
		// Before the fix: 300 x 1 MiB claimed = 300 MiB.
		grown := parkFrames(t, b, conns, 1<<20, func(c *rawConn, i int) {
			c.handshake(t, DefaultClusterName, "c"+strconv.Itoa(i), "b", nil)
		})
		t.Logf("heap grew %.1f MiB for %d unfinished 1 MiB frames", float64(grown)/(1<<20), conns)
		if grown > 60<<20 {
			t.Fatalf("heap grew %d MiB for %d unfinished 1 MiB frames", grown>>20, conns)
		}
	})
}

// tamperProxy relays connections to target. For each connection it parses
// the frames the dialer sends; edit may change a frame (by index, 0 being
// Hello) before it is relayed. Without edit it relays bytes as they come
// (TLS records are not frames). It records every byte it relays both ways.
type tamperProxy struct {
	ln     net.Listener
	target string
	edit   func(conn, index int, frame []byte) []byte
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	seen   bytes.Buffer
	nconns int
}

func newTamperProxy(t *testing.T, target string, edit func(conn, index int, frame []byte) []byte) *tamperProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{ln: ln, target: target, edit: edit}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tamperProxy) addr() string { return p.ln.Addr().String() }

func (p *tamperProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		id := p.nconns
		p.nconns++
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // dialer -> listener, frame by frame
			defer p.wg.Done()
			defer out.Close()
			if p.edit == nil {
				p.relay(in, out)
				return
			}
			for i := 0; ; i++ {
				var hdr [4]byte
				if _, err := io.ReadFull(in, hdr[:]); err != nil {
					return
				}
				frame := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
				copy(frame, hdr[:])
				if _, err := io.ReadFull(in, frame[4:]); err != nil {
					return
				}
				if p.edit != nil {
					frame = p.edit(id, i, frame)
				}
				p.record(frame)
				if _, err := out.Write(frame); err != nil {
					return
				}
			}
		}()
		go func() { // listener -> dialer, as is
			defer p.wg.Done()
			defer in.Close()
			p.relay(out, in)
		}()
	}
}

// relay copies from src to dst, recording what passes, until either fails.
func (p *tamperProxy) relay(src, dst net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.record(buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tamperProxy) record(b []byte) {
	p.mu.Lock()
	p.seen.Write(b)
	p.mu.Unlock()
}

func (p *tamperProxy) sawBytes(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.seen.Bytes(), b)
}

func (p *tamperProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// sealedPair starts a (dialer, through a proxy with edit) and b, sharing
// a secret, and returns them with b's recorder and logs.
func sealedPair(t *testing.T, edit func(conn, index int, frame []byte) []byte) (a *Transport, bPeer Peer, p *tamperProxy, rb *recorder, logsB *logCapture) {
	t.Helper()
	secret := []byte("correct horse battery staple")
	rb, logsB = &recorder{}, &logCapture{}
	cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", rb, logsB)
	cfgA.Secret, cfgB.Secret = secret, secret
	a, b := start(t, cfgA), start(t, cfgB)
	p = newTamperProxy(t, b.Addr(), edit)
	return a, Peer{Name: "b", Addr: p.addr()}, p, rb, logsB
}

// A frame altered on the wire after the handshake fails to authenticate:
// the receiver closes the link with a logged protocol violation and never
// delivers the altered frame; the link reconnects and carries on.
func TestSealedFrameTamperingIsDetected(t *testing.T) {
	for name, edit := range map[string]func(frame []byte){
		"body":   func(frame []byte) { frame[len(frame)-20] ^= 0x01 },
		"type":   func(frame []byte) { frame[4] ^= 0x01 },
		"tag":    func(frame []byte) { frame[len(frame)-1] ^= 0x80 },
		"length": nil, // handled below: a frame cut short, its prefix fixed up
	} {
		t.Run(name, func(t *testing.T) {
			a, bPeer, _, rb, logsB := sealedPair(t, func(conn, i int, frame []byte) []byte {
				// Frames 0 and 1 are Hello and Proof; frame 2 is the first
				// data frame of the first connection.
				if conn != 0 || i != 2 {
					return frame
				}
				frame = bytes.Clone(frame)
				if edit == nil {
					frame = frame[:len(frame)-1]
					binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
					return frame
				}
				edit(frame)
				return frame
			})
			want := AppendMessage(nil, &testMsg{typ: frameSeq, seq: 1, data: bytes.Repeat([]byte{0xAB}, 64)})
			if err := a.Send(bPeer, want); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, func() bool { return logsB.count(slog.LevelError, ErrAuth) >= 1 })
			// The link reconnects and the next frame arrives intact.
			waitFor(t, 10*time.Second, func() bool {
				if err := a.Send(bPeer, want); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
				return rb.n.Load() > 0
			})
			for _, f := range rb.snapshot() {
				if f.typ != frameSeq || !bytes.Equal(f.body, want[frameHeaderSize:]) {
					t.Fatalf("delivered an altered frame: %v % x", f.typ, f.body)
				}
			}
		})
	}
}

// A frame recorded and played again is refused: the nonce is a counter.
func TestSealedFrameReplayIsDetected(t *testing.T) {
	var first []byte
	a, bPeer, _, rb, logsB := sealedPair(t, func(conn, i int, frame []byte) []byte {
		switch {
		case conn == 0 && i == 2:
			first = bytes.Clone(frame)
		case conn == 0 && i == 3:
			return append(bytes.Clone(first), frame...) // the first frame again, then this one
		}
		return frame
	})
	if err := a.Send(bPeer, seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
	if err := a.Send(bPeer, seqFrame(2, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return logsB.count(slog.LevelError, ErrAuth) >= 1 })
	if n := rb.n.Load(); n != 1 {
		t.Fatalf("%d frames delivered, want 1 (the replayed frame and the one after it are dropped)", n)
	}
}

// With a secret, an eavesdropper sees no payload, and no frame type.
func TestSealedFramesHidePayloads(t *testing.T) {
	a, bPeer, p, rb, _ := sealedPair(t, nil)
	payload := []byte("plaintext-canary-0123456789")
	frame := AppendFrame(nil, frameB, payload)
	for range 10 {
		if err := a.Send(bPeer, frame); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 10 })
	for _, f := range rb.snapshot() {
		if !bytes.Equal(f.body, payload) {
			t.Fatalf("delivered % x", f.body)
		}
	}
	if p.sawBytes(payload) || p.sawBytes([]byte("canary")) {
		t.Fatal("the payload crossed the wire in the clear")
	}
	if p.sawBytes(frame[:5]) {
		t.Fatal("a frame header crossed the wire in the clear")
	}
}

// Sealed pings keep an idle sealed link up.
func TestSealedLinkPings(t *testing.T) {
	secret := []byte("s3cret")
	var rb recorder
	cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", &rb, nil)
	cfgA.Secret, cfgB.Secret = secret, secret
	cfgA.IdleTimeout, cfgB.IdleTimeout = 150*time.Millisecond, 150*time.Millisecond
	a, b := start(t, cfgA), start(t, cfgB)
	if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return b.Stats().Peers["a"].Received[FramePing] >= 8 })
	s := a.Stats().Peers["b"]
	if s.Dials != 1 || !s.Connected || s.Received[FramePing] < 6 {
		t.Fatalf("idle sealed link: %+v", s)
	}
	// Byte counts are what crossed the wire: sealed pings are 21 bytes.
	if s.BytesReceived != 21*s.Received[FramePing] {
		t.Fatalf("%d bytes for %d sealed pings", s.BytesReceived, s.Received[FramePing])
	}
}

// testCA is a certificate authority for peer certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ringcast test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a peer certificate for 127.0.0.1, valid for both ends of a
// link.
func (ca *testCA) issue(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// config returns the mutual TLS configuration of peer name.
func (ca *testCA) config(t testing.TB, name string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, name)},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// Peers with certificates from the cluster's CA link over mutual TLS; the
// wire shows no payload.
func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	var rb recorder
	cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", &rb, nil)
	cfgA.TLS, cfgB.TLS = ca.config(t, "a"), ca.config(t, "b")
	a, b := start(t, cfgA), start(t, cfgB)
	p := newTamperProxy(t, b.Addr(), nil)
	payload := []byte("plaintext-canary-tls")
	if err := a.Send(Peer{Name: "b", Addr: p.addr()}, AppendFrame(nil, frameB, payload)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
	if got := rb.snapshot()[0].body; !bytes.Equal(got, payload) {
		t.Fatalf("delivered %q", got)
	}
	if p.sawBytes([]byte("canary")) {
		t.Fatal("the payload crossed the wire in the clear")
	}
}

// A peer whose certificate comes from another CA is refused, on either
// side of a link.
func TestMutualTLSRefusesOtherCA(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	t.Run("dialer", func(t *testing.T) {
		cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", nil, nil)
		cfgA.TLS, cfgB.TLS = ca.config(t, "a"), ca.config(t, "b")
		cfgA.TLS.Certificates = []tls.Certificate{other.issue(t, "a")}
		_, logsB, _ := refusedPair(t, cfgA, cfgB, ErrAuth)
		waitFor(t, 5*time.Second, func() bool { return logsB.count(slog.LevelWarn, ErrAuth) >= 1 })
	})
	t.Run("listener", func(t *testing.T) {
		cfgA, cfgB := testConfig("a", nopHandler(), nil), testConfig("b", nil, nil)
		cfgA.TLS, cfgB.TLS = ca.config(t, "a"), ca.config(t, "b")
		cfgB.TLS.Certificates = []tls.Certificate{other.issue(t, "b")}
		refusedPair(t, cfgA, cfgB, ErrAuth)
	})
	t.Run("no certificate", func(t *testing.T) {
		cfgB := testConfig("b", nopHandler(), nil)
		cfgB.TLS = ca.config(t, "b")
		b := start(t, cfgB)
		c, err := tls.Dial("tcp", b.Addr(), &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
		if err == nil {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
		}
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
		waitFor(t, 5*time.Second, func() bool { return b.Stats().Refused.Handshake == 1 })
	})
}

func TestTLSConfigChecked(t *testing.T) {
	ca := newTestCA(t)
	for name, edit := range map[string]func(c *tls.Config){
		"no client auth": func(c *tls.Config) { c.ClientAuth = tls.VerifyClientCertIfGiven },
		"no cert":        func(c *tls.Config) { c.Certificates = nil },
		"no client CAs":  func(c *tls.Config) { c.ClientCAs = nil },
	} {
		cfg := testConfig("b", nopHandler(), nil)
		cfg.TLS = ca.config(t, "b")
		edit(cfg.TLS)
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}
