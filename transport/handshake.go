package transport

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The handshake, run by the dialer on every new connection:
//
//	dialer   -> Hello{Cluster, Node, Version, Nonce}
//	listener -> HelloAck{Node, Version, Nonce, Proof, Err}
//	dialer   -> Proof{Proof}
//
// The listener checks version, cluster and name, and answers with its own
// nonce and, if it has a secret, a proof over both nonces and names. The
// dialer checks the listener's name and proof before proving the secret
// itself; the listener checks that proof before reading anything else. A
// listener that refuses answers HelloAck{Err} when it can and closes.

// nonceSize is the length of each side's random handshake nonce.
const nonceSize = 16

// maxHandshakeFrame bounds the frames read before a peer is
// authenticated, so an unknown client cannot make the listener allocate
// MaxFrameSize.
const maxHandshakeFrame = 64 << 10

// linkVersion is the version of the link protocol itself (handshake and
// framing), sent as the last field of Hello and HelloAck. Version 1 did
// not send it; version 2 seals frames when a secret is set. Both ends of a
// link must speak the same one.
const linkVersion = 2

// Proof roles, part of the HMAC input so neither side's proof can be
// replayed as the other's.
const (
	roleListener = "ringcast transport v2 listener"
	roleDialer   = "ringcast transport v2 dialer"
)

// hello is the dialer's first frame. Its first fields never change, so a
// listener can always tell a version mismatch.
type hello struct {
	Cluster string
	Node    string
	Version uint8
	Nonce   []byte
	// link is the sender's link protocol version: zero encodes as
	// linkVersion; decoding reads 1 when the field is absent and refuses
	// an explicit zero.
	link uint8
}

// helloAck is the listener's answer; a non-empty Err refuses the
// connection.
type helloAck struct {
	Node    string
	Version uint8
	Nonce   []byte
	Proof   []byte
	Err     string
	link    uint8 // as in hello
}

// proof is the dialer's last handshake frame. Proof is empty without a
// secret.
type proof struct {
	Proof []byte
}

// The bodies of handshake frames are msgpack arrays of their fields in
// declaration order. A decoder skips fields beyond the ones it knows, so a
// later version can append fields and still be told that it speaks
// another version.

func (*hello) FrameType() FrameType { return FrameHello }

func (m *hello) AppendBody(b []byte) []byte {
	return appendFields(b, func(e *msgpack.Encoder) error {
		return errors.Join(e.EncodeArrayLen(5), e.EncodeString(m.Cluster), e.EncodeString(m.Node),
			e.EncodeUint8(m.Version), e.EncodeBytes(m.Nonce), e.EncodeUint8(linkOr(m.link)))
	})
}

func (m *hello) DecodeBody(b []byte) error {
	return decodeFields(b, "Hello", 4, &m.link, func(d *msgpack.Decoder) (err error) {
		m.Cluster, err = d.DecodeString()
		if err == nil {
			m.Node, err = d.DecodeString()
		}
		if err == nil {
			m.Version, err = decodeUint8(d)
		}
		if err == nil {
			m.Nonce, err = d.DecodeBytes()
		}
		return err
	})
}

func (*helloAck) FrameType() FrameType { return FrameHelloAck }

func (m *helloAck) AppendBody(b []byte) []byte {
	return appendFields(b, func(e *msgpack.Encoder) error {
		return errors.Join(e.EncodeArrayLen(6), e.EncodeString(m.Node), e.EncodeUint8(m.Version),
			e.EncodeBytes(m.Nonce), e.EncodeBytes(m.Proof), e.EncodeString(m.Err), e.EncodeUint8(linkOr(m.link)))
	})
}

func (m *helloAck) DecodeBody(b []byte) error {
	return decodeFields(b, "HelloAck", 5, &m.link, func(d *msgpack.Decoder) (err error) {
		m.Node, err = d.DecodeString()
		if err == nil {
			m.Version, err = decodeUint8(d)
		}
		if err == nil {
			m.Nonce, err = d.DecodeBytes()
		}
		if err == nil {
			m.Proof, err = d.DecodeBytes()
		}
		if err == nil {
			m.Err, err = d.DecodeString()
		}
		return err
	})
}

func (*proof) FrameType() FrameType { return FrameProof }

func (m *proof) AppendBody(b []byte) []byte {
	return appendFields(b, func(e *msgpack.Encoder) error {
		return errors.Join(e.EncodeArrayLen(1), e.EncodeBytes(m.Proof))
	})
}

func (m *proof) DecodeBody(b []byte) error {
	return decodeFields(b, "Proof", 1, nil, func(d *msgpack.Decoder) (err error) {
		m.Proof, err = d.DecodeBytes()
		return err
	})
}

// linkOr returns v, or linkVersion if v is zero: the link version a
// handshake frame built by this node announces.
func linkOr(v uint8) uint8 {
	if v == 0 {
		return linkVersion
	}
	return v
}

// appendFields appends what encode writes to b.
func appendFields(b []byte, encode func(e *msgpack.Encoder) error) []byte {
	buf := bytes.NewBuffer(b)
	if err := encode(msgpack.NewEncoder(buf)); err != nil {
		panic("transport: encoding a handshake frame: " + err.Error()) // a bytes.Buffer never fails
	}
	return buf.Bytes()
}

// decodeFields decodes the body of handshake frame name: an array of at
// least want fields, read by decode; then, if link is not nil, the link
// protocol version that follows them (1 when absent); then it skips the
// fields it does not know and checks that nothing follows. Errors wrap
// ErrMalformed.
func decodeFields(body []byte, name string, want int, link *uint8, decode func(d *msgpack.Decoder) error) error {
	r := bytes.NewReader(body)
	d := msgpack.NewDecoder(r)
	n, err := d.DecodeArrayLen()
	if err == nil && n < want {
		err = fmt.Errorf("%d fields, want %d", n, want)
	}
	if err == nil {
		err = decode(d)
	}
	known := want
	if link != nil && err == nil {
		*link = 1
		if n > want {
			*link, err = decodeUint8(d)
			if err == nil && *link == 0 {
				err = errors.New("link protocol version 0")
			}
			known++
		}
	}
	for i := known; err == nil && i < n; i++ {
		err = d.Skip()
	}
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d trailing bytes", r.Len())
	}
	if err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, name, err)
	}
	return nil
}

// decodeUint8 reads an unsigned integer that must fit a uint8.
func decodeUint8(d *msgpack.Decoder) (uint8, error) {
	v, err := d.DecodeUint64()
	if err == nil && v > math.MaxUint8 {
		err = fmt.Errorf("value %d overflows uint8", v)
	}
	return uint8(v), err
}

// computeProof returns HMAC-SHA256(secret) over the role, the cluster,
// both names and both nonces, each length-prefixed.
func computeProof(secret []byte, role, cluster, dialer, listener string, dialerNonce, listenerNonce []byte) []byte {
	h := hmac.New(sha256.New, secret)
	var l [4]byte
	for _, field := range [][]byte{[]byte(role), []byte(cluster), []byte(dialer), []byte(listener), dialerNonce, listenerNonce} {
		binary.BigEndian.PutUint32(l[:], uint32(len(field)))
		h.Write(l[:])
		h.Write(field)
	}
	return h.Sum(nil)
}

// newNonce returns nonceSize random bytes.
func newNonce() []byte {
	n := make([]byte, nonceSize)
	rand.Read(n) // crypto/rand.Read never fails (it panics if the OS cannot supply randomness)
	return n
}

// writeHandshake writes one handshake frame directly to conn.
func writeHandshake(conn net.Conn, m Message) error {
	_, err := conn.Write(AppendMessage(nil, m))
	return err
}

// dialHandshake runs the dialer's side of the handshake on conn, expecting
// the listener to be named peer, and returns the keys that seal the
// connection's frames (nil without a secret, or with TLS). br reads from
// conn and keeps any bytes buffered past the handshake. The caller sets
// and clears the deadlines.
func (t *Transport) dialHandshake(conn net.Conn, br *bufio.Reader, peer string) (*session, error) {
	cfg := &t.cfg
	myNonce := newNonce()
	if err := writeHandshake(conn, &hello{Cluster: cfg.ClusterName, Node: cfg.NodeName, Version: cfg.ProtocolVersion, Nonce: myNonce}); err != nil {
		return nil, fmt.Errorf("%w: sending Hello: %w", ErrHandshake, err)
	}
	typ, body, err := readFrame(br, min(maxHandshakeFrame, cfg.MaxFrameSize), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: reading HelloAck: %w", ErrHandshake, err)
	}
	if typ != FrameHelloAck {
		return nil, fmt.Errorf("%w: got a %v frame, want HelloAck", ErrHandshake, typ)
	}
	var ack helloAck
	if err := ack.DecodeBody(body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if ack.Err != "" {
		return nil, refusalError(ack.Err, ack.Node)
	}
	if ack.link != linkVersion {
		return nil, fmt.Errorf("%w: %q speaks link protocol version %d, %q speaks %d", ErrVersionMismatch, ack.Node, ack.link, cfg.NodeName, linkVersion)
	}
	if ack.Version != cfg.ProtocolVersion {
		return nil, fmt.Errorf("%w: %q speaks protocol version %d, %q speaks %d", ErrVersionMismatch, ack.Node, ack.Version, cfg.NodeName, cfg.ProtocolVersion)
	}
	if ack.Node != peer {
		return nil, fmt.Errorf("%w: dialled %q, the listener is %q", ErrPeerMismatch, peer, ack.Node)
	}
	if len(ack.Nonce) != nonceSize {
		return nil, fmt.Errorf("%w: HelloAck nonce of %d bytes, want %d", ErrHandshake, len(ack.Nonce), nonceSize)
	}
	var p proof
	switch {
	case len(cfg.Secret) > 0 && len(ack.Proof) == 0:
		return nil, fmt.Errorf("%w: %q did not prove the shared secret (is a Secret configured there?)", ErrAuth, peer)
	case len(cfg.Secret) > 0:
		want := computeProof(cfg.Secret, roleListener, cfg.ClusterName, cfg.NodeName, peer, myNonce, ack.Nonce)
		if !hmac.Equal(want, ack.Proof) {
			return nil, fmt.Errorf("%w: %q proved a different secret", ErrAuth, peer)
		}
		p.Proof = computeProof(cfg.Secret, roleDialer, cfg.ClusterName, cfg.NodeName, peer, myNonce, ack.Nonce)
	case len(ack.Proof) > 0:
		return nil, fmt.Errorf("%w: %q requires a shared secret and none is configured", ErrAuth, peer)
	}
	if err := writeHandshake(conn, &p); err != nil {
		return nil, fmt.Errorf("%w: sending Proof: %w", ErrHandshake, err)
	}
	if len(cfg.Secret) == 0 || cfg.TLS != nil {
		return nil, nil
	}
	return newSession(cfg.Secret, cfg.ClusterName, cfg.NodeName, peer, myNonce, ack.Nonce, true)
}

// acceptHandshake runs the listener's side of the handshake on conn and
// returns the dialer's node name and the keys that seal the connection's
// frames (nil without a secret, or with TLS). On failure it answers
// HelloAck{Err} when it can; the caller closes conn. The caller sets and
// clears the deadlines.
func (t *Transport) acceptHandshake(conn net.Conn, br *bufio.Reader) (string, *session, error) {
	name, ackNonce, dialerNonce, err := t.acceptHello(conn, br)
	if err != nil || len(t.cfg.Secret) == 0 || t.cfg.TLS != nil {
		return name, nil, err
	}
	sess, err := newSession(t.cfg.Secret, t.cfg.ClusterName, name, t.cfg.NodeName, dialerNonce, ackNonce, false)
	return name, sess, err
}

// acceptHello runs the listener's side of the handshake up to and
// including the dialer's proof, and returns the dialer's name and both
// nonces.
func (t *Transport) acceptHello(conn net.Conn, br *bufio.Reader) (string, []byte, []byte, error) {
	cfg := &t.cfg
	maxFrame := min(maxHandshakeFrame, cfg.MaxFrameSize)
	typ, body, err := readFrame(br, maxFrame, nil)
	if err != nil {
		if isTimeout(err) {
			err = fmt.Errorf("%w: no Hello within %v", ErrHandshake, cfg.HandshakeTimeout)
		} else {
			err = fmt.Errorf("%w: reading Hello: %w", ErrHandshake, err)
		}
		return "", nil, nil, t.refuse(conn, err)
	}
	if typ != FrameHello {
		return "", nil, nil, t.refuse(conn, fmt.Errorf("%w: got a %v frame, want Hello", ErrHandshake, typ))
	}
	var h hello
	if err := h.DecodeBody(body); err != nil {
		return "", nil, nil, t.refuse(conn, fmt.Errorf("%w: %w", ErrHandshake, err))
	}
	switch {
	case t.protected && !isLoopback(conn.RemoteAddr()):
		err = protectedModeError(h.Node, conn.RemoteAddr())
	case h.Version != cfg.ProtocolVersion:
		err = fmt.Errorf("%w: %q speaks protocol version %d, %q speaks %d", ErrVersionMismatch, h.Node, h.Version, cfg.NodeName, cfg.ProtocolVersion)
	case h.link != linkVersion:
		err = fmt.Errorf("%w: %q speaks link protocol version %d, %q speaks %d", ErrVersionMismatch, h.Node, h.link, cfg.NodeName, linkVersion)
	case h.Cluster != cfg.ClusterName:
		err = fmt.Errorf("%w: %q is in cluster %q, %q is in cluster %q", ErrClusterMismatch, h.Node, h.Cluster, cfg.NodeName, cfg.ClusterName)
	case h.Node == "":
		err = fmt.Errorf("%w: Hello without a node name", ErrHandshake)
	case h.Node == cfg.NodeName:
		err = fmt.Errorf("%w: the dialer uses the listener's own name %q", ErrPeerMismatch, h.Node)
	case len(h.Nonce) != nonceSize:
		err = fmt.Errorf("%w: Hello nonce of %d bytes, want %d", ErrHandshake, len(h.Nonce), nonceSize)
	}
	if err != nil {
		return h.Node, nil, nil, t.refuse(conn, err)
	}
	ack := helloAck{Node: cfg.NodeName, Version: cfg.ProtocolVersion, Nonce: newNonce()}
	if len(cfg.Secret) > 0 {
		ack.Proof = computeProof(cfg.Secret, roleListener, cfg.ClusterName, h.Node, cfg.NodeName, h.Nonce, ack.Nonce)
	}
	if err := writeHandshake(conn, &ack); err != nil {
		return h.Node, nil, nil, fmt.Errorf("%w: sending HelloAck: %w", ErrHandshake, err)
	}
	typ, body, err = readFrame(br, maxFrame, nil)
	if err != nil {
		if isTimeout(err) {
			err = fmt.Errorf("%w: no Proof within %v", ErrHandshake, cfg.HandshakeTimeout)
		} else {
			err = fmt.Errorf("%w: reading Proof: %w", ErrHandshake, err)
		}
		return h.Node, nil, nil, t.refuse(conn, err)
	}
	if typ != FrameProof {
		return h.Node, nil, nil, t.refuse(conn, fmt.Errorf("%w: got a %v frame, want Proof", ErrHandshake, typ))
	}
	var p proof
	if err := p.DecodeBody(body); err != nil {
		return h.Node, nil, nil, t.refuse(conn, fmt.Errorf("%w: %w", ErrHandshake, err))
	}
	if len(cfg.Secret) > 0 {
		want := computeProof(cfg.Secret, roleDialer, cfg.ClusterName, h.Node, cfg.NodeName, h.Nonce, ack.Nonce)
		if !hmac.Equal(want, p.Proof) {
			return h.Node, nil, nil, t.refuse(conn, fmt.Errorf("%w: %q did not prove the shared secret", ErrAuth, h.Node))
		}
	}
	return h.Node, ack.Nonce, h.Nonce, nil
}

// refuse answers a failed handshake with HelloAck{Err}, best effort, and
// returns err.
func (t *Transport) refuse(conn net.Conn, err error) error {
	ack := helloAck{Node: t.cfg.NodeName, Version: t.cfg.ProtocolVersion, Err: err.Error()}
	if conn.SetWriteDeadline(time.Now().Add(min(t.cfg.WriteTimeout, t.cfg.HandshakeTimeout))) == nil {
		_ = writeHandshake(conn, &ack)
	}
	return err
}

// maxRefusalText bounds how much of a peer's refusal text is kept.
const maxRefusalText = 1024

// refusalSentinels are matched against the text of a peer's refusal, so the
// dialer reports the same sentinel as the listener.
var refusalSentinels = []error{ErrProtectedMode, ErrClusterMismatch, ErrVersionMismatch, ErrAuth, ErrPeerMismatch, ErrHandshake}

// refusalError turns a listener's HelloAck.Err into an error wrapping the
// matching sentinel (ErrHandshake if none matches).
func refusalError(msg, by string) error {
	if len(msg) > maxRefusalText {
		msg = msg[:maxRefusalText] + "..."
	}
	for _, s := range refusalSentinels {
		if rest, ok := strings.CutPrefix(msg, s.Error()); ok {
			return fmt.Errorf("%w%s (refused by %q)", s, rest, by)
		}
	}
	return fmt.Errorf("%w: %s (refused by %q)", ErrHandshake, msg, by)
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
