package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ProtocolVersion is the version of the link protocol spoken by this
// package. Both ends of a link must speak the same version; the handshake
// refuses a peer that does not. Version 2 added the replica fields of
// Deliver. Package ring's member version moves with it, so that members
// that cannot link do not share a ring.
const ProtocolVersion uint8 = 2

// FrameType is the type byte that follows a frame's length prefix. Values
// below FramePublish are reserved for the link itself and are never passed
// to a Handler; values from FramePublish up belong to package pubsub.
type FrameType uint8

// Link-internal frame types. They are never passed to a Handler and cannot
// be sent with Transport.Send.
const (
	FrameHello    FrameType = 1 // handshake: dialer introduces itself
	FrameHelloAck FrameType = 2 // handshake: listener answers (or refuses)
	FrameProof    FrameType = 3 // handshake: dialer proves the shared secret
	FramePing     FrameType = 4 // keepalive, empty body
)

// Pubsub frame types. The values are part of the wire protocol and never
// change. The comment names the message type that forms the body.
const (
	FramePublish        FrameType = 16 // Publish
	FramePublishAck     FrameType = 17 // PublishAck
	FrameDeliver        FrameType = 18 // Deliver
	FrameSubscribe      FrameType = 19 // Subscribe
	FrameSubscribeAck   FrameType = 20 // SubscribeAck
	FrameUnsubscribe    FrameType = 21 // Unsubscribe
	FrameStateRequest   FrameType = 22 // StateRequest
	FrameState          FrameType = 23 // TopicState (reply to StateRequest, or pushed as a hand-off)
	FrameStateAck       FrameType = 24 // StateAck (reply to a pushed hand-off)
	FrameReplicate      FrameType = 25 // Replicate
	FrameReplicateAck   FrameType = 26 // ReplicateAck
	FrameHistoryRequest FrameType = 27 // HistoryRequest
	FrameHistory        FrameType = 28 // History
)

// firstUserFrame is the lowest frame type that is delivered to a Handler.
const firstUserFrame = FramePublish

// String returns the frame type's name, or "FrameType(n)" for a value this
// version does not know.
func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "Hello"
	case FrameHelloAck:
		return "HelloAck"
	case FrameProof:
		return "Proof"
	case FramePing:
		return "Ping"
	case FramePublish:
		return "Publish"
	case FramePublishAck:
		return "PublishAck"
	case FrameDeliver:
		return "Deliver"
	case FrameSubscribe:
		return "Subscribe"
	case FrameSubscribeAck:
		return "SubscribeAck"
	case FrameUnsubscribe:
		return "Unsubscribe"
	case FrameStateRequest:
		return "StateRequest"
	case FrameState:
		return "State"
	case FrameReplicate:
		return "Replicate"
	case FrameReplicateAck:
		return "ReplicateAck"
	case FrameHistoryRequest:
		return "HistoryRequest"
	case FrameHistory:
		return "History"
	case FrameStateAck:
		return "StateAck"
	}
	return "FrameType(" + strconv.Itoa(int(t)) + ")"
}

// MarshalText returns the frame type's name (String), so that JSON keys
// frame counts by name.
func (t FrameType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses what MarshalText returns.
func (t *FrameType) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutPrefix(s, "FrameType("); ok {
		if v, ok := strings.CutSuffix(n, ")"); ok {
			if i, err := strconv.ParseUint(v, 10, 8); err == nil {
				*t = FrameType(i)
				return nil
			}
		}
		return fmt.Errorf("transport: invalid frame type %q", s)
	}
	for i := range 256 {
		if ft := FrameType(i); ft.String() == s {
			*t = ft
			return nil
		}
	}
	return fmt.Errorf("transport: unknown frame type %q", s)
}

// Errors returned by this package. Errors carrying more detail wrap one of
// these with %w; test for them with errors.Is.
var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrQueueFull is returned by Send when the peer's link queue holds
	// Config.QueueFrames frames or Config.QueueBytes bytes. The frame is
	// counted as dropped.
	ErrQueueFull = errors.New("transport: send queue full")
	// ErrFrameTooLarge reports a frame whose length exceeds
	// Config.MaxFrameSize, on either side of a link.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMalformed reports bytes that are not a valid frame or body.
	// Body decode errors wrap it.
	ErrMalformed = errors.New("transport: malformed frame")
	// ErrClusterMismatch reports a handshake between nodes configured with
	// different cluster names.
	ErrClusterMismatch = errors.New("transport: cluster name mismatch")
	// ErrVersionMismatch reports a handshake between nodes speaking
	// different protocol versions.
	ErrVersionMismatch = errors.New("transport: protocol version mismatch")
	// ErrAuth reports a handshake in which one end failed to prove
	// knowledge of the shared secret (or only one end has a secret).
	ErrAuth = errors.New("transport: authentication failed")
	// ErrPeerMismatch reports a handshake with a node whose name is not the
	// one that was dialled, or that uses the listener's own name.
	ErrPeerMismatch = errors.New("transport: peer name mismatch")
	// ErrHandshake reports any other handshake failure: an unexpected or
	// undecodable frame, a timeout, a connection closed half-way.
	ErrHandshake = errors.New("transport: handshake failed")
	// ErrInvalidPeer is returned by Send for a Peer without a name or
	// address, or naming the local node.
	ErrInvalidPeer = errors.New("transport: invalid peer")
	// ErrInvalidConfig is returned by New for an unusable Config.
	ErrInvalidConfig = errors.New("transport: invalid config")
)

// frameHeaderSize is the length prefix plus the type byte.
const frameHeaderSize = 5

// maxEncodableFrame is the largest N a 4-byte length prefix can carry.
const maxEncodableFrame = math.MaxUint32

// pingFrame is the complete, immutable Ping frame.
var pingFrame = []byte{0, 0, 0, 1, byte(FramePing)}

// EncodeFrame returns a complete frame (header and body) for m in a newly
// allocated slice of the right size. The result may be passed to Send for
// several peers. To send one message to one peer, SendMsg saves the
// allocation; to send it to several, AppendFrame into a reused buffer.
func EncodeFrame(m Message) []byte {
	n := 64
	if s, ok := m.(sizer); ok {
		n = s.maxBodySize()
	}
	return AppendFrame(make([]byte, 0, frameHeaderSize+n), m)
}

// AppendFrame appends a complete frame for m to dst and returns the
// extended slice. It panics if the frame would not fit a 4-byte length
// prefix (4 GiB), which no configuration of this package accepts anyway.
func AppendFrame(dst []byte, m Message) []byte {
	start := len(dst)
	return endFrame(m.AppendBody(beginFrame(dst, m.FrameType())), start)
}

// AppendFrame appends a complete Deliver frame to dst, as AppendFrame(dst,
// m) but without converting m to an interface, so that a Deliver built
// for one fan-out can stay on the caller's stack.
func (m *Deliver) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return endFrame(m.AppendBody(beginFrame(dst, FrameDeliver)), start)
}

// AppendFrame appends a complete Publish frame to dst; see
// Deliver.AppendFrame.
func (m *Publish) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return endFrame(m.AppendBody(beginFrame(dst, FramePublish)), start)
}

// AppendFrame appends a complete Replicate frame to dst; see
// Deliver.AppendFrame.
func (m *Replicate) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return endFrame(m.AppendBody(beginFrame(dst, FrameReplicate)), start)
}

// beginFrame appends a frame header whose length endFrame fills in.
func beginFrame(dst []byte, typ FrameType) []byte { return append(dst, 0, 0, 0, 0, byte(typ)) }

// endFrame writes the length of the frame that starts at dst[start:]. It
// panics if the frame would not fit a 4-byte length prefix.
func endFrame(dst []byte, start int) []byte {
	n := len(dst) - start - 4
	if uint64(n) > maxEncodableFrame {
		panic("transport: frame larger than 4 GiB")
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst
}

// ReadFrame reads one frame from r and returns its type and body. The
// length N (type byte plus body) is checked against max, and against
// N >= 1, before anything is allocated: a violation returns an error
// wrapping ErrFrameTooLarge or ErrMalformed and leaves r positioned after
// the length prefix. The body is a fresh allocation owned by the caller.
// A clean end of input before a frame starts returns io.EOF; an end inside
// a frame returns io.ErrUnexpectedEOF.
//
// With a *bufio.Reader the header is read without allocating; links use
// one. ReadFrame is exported for tests and fuzzing.
func ReadFrame(r io.Reader, max int) (FrameType, []byte, error) {
	if br, ok := r.(*bufio.Reader); ok {
		return readFrame(br, max)
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n, err := checkLength(binary.BigEndian.Uint32(hdr[:4]), max)
	if err != nil {
		return 0, nil, err
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return 0, nil, noEOF(err)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, noEOF(err)
	}
	return FrameType(hdr[4]), body, nil
}

// readFrame is ReadFrame for a buffered reader: the header is peeked from
// the buffer, so only the body is allocated.
func readFrame(br *bufio.Reader, max int) (FrameType, []byte, error) {
	hdr, err := br.Peek(4)
	if err != nil {
		if len(hdr) > 0 {
			return 0, nil, noEOF(err)
		}
		return 0, nil, err
	}
	n, err := checkLength(binary.BigEndian.Uint32(hdr), max)
	if _, derr := br.Discard(4); derr != nil {
		return 0, nil, noEOF(derr)
	}
	if err != nil {
		return 0, nil, err
	}
	typ, err := br.ReadByte()
	if err != nil {
		return 0, nil, noEOF(err)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, noEOF(err)
	}
	return FrameType(typ), body, nil
}

// checkLength validates a frame's length prefix against max.
func checkLength(n uint32, max int) (int, error) {
	if n == 0 {
		return 0, fmt.Errorf("%w: zero length prefix", ErrMalformed)
	}
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	}
	return int(n), nil
}

// noEOF turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkSendFrame validates a frame handed to Send: a consistent length
// prefix, a size within max and a pubsub frame type.
func checkSendFrame(frame []byte, max int) error {
	if len(frame) < frameHeaderSize {
		return fmt.Errorf("%w: %d bytes is shorter than a frame header", ErrMalformed, len(frame))
	}
	n := binary.BigEndian.Uint32(frame)
	if uint64(n) != uint64(len(frame)-4) {
		return fmt.Errorf("%w: length prefix %d does not match %d bytes (build frames with EncodeFrame)", ErrMalformed, n, len(frame)-4)
	}
	if uint64(n) > uint64(max) {
		return fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	}
	if FrameType(frame[4]) < firstUserFrame {
		return fmt.Errorf("%w: %v is a link-internal frame type", ErrMalformed, FrameType(frame[4]))
	}
	return nil
}
