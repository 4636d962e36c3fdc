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

// FrameType is the type byte that follows a frame's length prefix. Values
// below FirstUserFrame are reserved for the link itself and are never
// passed to a Handler; values from FirstUserFrame up belong to the
// package that uses the Transport, which gives them their meaning.
type FrameType uint8

// Link frame types. They are never passed to a Handler and cannot be sent
// with Transport.Send.
const (
	FrameHello    FrameType = 1 // handshake: dialer introduces itself
	FrameHelloAck FrameType = 2 // handshake: listener answers (or refuses)
	FrameProof    FrameType = 3 // handshake: dialer proves the shared secret
	FramePing     FrameType = 4 // keepalive, empty body
)

// FirstUserFrame is the lowest frame type a user of the Transport may send,
// and the lowest delivered to its Handler.
const FirstUserFrame FrameType = 16

// String returns the name of a link frame type ("Ping"), or "FrameType(n)"
// for any other value: the names of user frame types are their user's.
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
	for ft := FrameHello; ft < FirstUserFrame; ft++ {
		if ft.String() == s {
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
	// ErrMalformed reports bytes that are not a valid frame, or a link
	// frame whose body does not decode.
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
	// ErrProtectedMode reports a peer connection refused because the node
	// is in protected mode (no Secret, no TLS) and the other end is not on
	// loopback; see Config.InsecureAllowRemotePeers.
	ErrProtectedMode = errors.New("transport: protected mode")
	// ErrInvalidPeer is returned by Send for a Peer without a name or
	// address, or naming the local node.
	ErrInvalidPeer = errors.New("transport: invalid peer")
	// ErrInvalidConfig is returned by New for an unusable Config.
	ErrInvalidConfig = errors.New("transport: invalid config")
)

// FrameHeaderSize is the size of a frame's header: the 4-byte length
// prefix and the type byte.
const FrameHeaderSize = 5

// frameHeaderSize is FrameHeaderSize, for this package's own arithmetic.
const frameHeaderSize = FrameHeaderSize

// maxEncodableFrame is the largest N a 4-byte length prefix can carry.
const maxEncodableFrame = math.MaxUint32

// pingFrame is the complete, immutable Ping frame.
var pingFrame = []byte{0, 0, 0, 1, byte(FramePing)}

// Message is a message that encodes itself as the body of a frame of its
// type, for SendMsg and AppendMessage. Encoding must only read the
// message.
type Message interface {
	// FrameType returns the frame type that carries this message.
	FrameType() FrameType
	// AppendBody appends the body of the message to b and returns the
	// extended slice.
	AppendBody(b []byte) []byte
}

// AppendFrame appends a complete frame of type typ with the given body to
// dst and returns the extended slice. It panics if the frame would not fit
// a 4-byte length prefix (4 GiB), which no configuration of this package
// accepts anyway.
func AppendFrame(dst []byte, typ FrameType, body []byte) []byte {
	start := len(dst)
	return EndFrame(append(BeginFrame(dst, typ), body...), start)
}

// AppendMessage appends a complete frame for m to dst and returns the
// extended slice; see AppendFrame.
func AppendMessage(dst []byte, m Message) []byte {
	start := len(dst)
	return EndFrame(m.AppendBody(BeginFrame(dst, m.FrameType())), start)
}

// BeginFrame appends the header of a frame of type typ to dst, with a
// length that EndFrame fills in once the caller appended the body. The
// pair lets an encoder write a frame without going through the Message
// interface (so that the message may stay on the caller's stack).
func BeginFrame(dst []byte, typ FrameType) []byte { return append(dst, 0, 0, 0, 0, byte(typ)) }

// EndFrame writes the length of the frame that BeginFrame started at
// frame[start:] and returns frame. It panics if the frame would not fit a
// 4-byte length prefix.
func EndFrame(frame []byte, start int) []byte {
	n := len(frame) - start - 4
	if uint64(n) > maxEncodableFrame {
		panic("transport: frame larger than 4 GiB")
	}
	binary.BigEndian.PutUint32(frame[start:], uint32(n))
	return frame
}

// ReadFrame reads one frame from r and returns its type and body. The
// length N (type byte plus body) is checked against max, and against
// N >= 1, before anything is allocated: a violation returns an error
// wrapping ErrFrameTooLarge or ErrMalformed and leaves r positioned after
// the length prefix. The body is a fresh allocation owned by the caller,
// grown as its bytes arrive rather than sized by the length prefix, so a
// peer that claims a large frame and sends little of it holds little
// memory. A clean end of input before a frame starts returns io.EOF; an
// end inside a frame returns io.ErrUnexpectedEOF.
//
// With a *bufio.Reader the header is read without allocating; links use
// one. ReadFrame is exported for tests and fuzzing.
func ReadFrame(r io.Reader, max int) (FrameType, []byte, error) {
	if br, ok := r.(*bufio.Reader); ok {
		return readFrame(br, max, nil)
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
	body, err := readBody(r, n-1)
	if err != nil {
		return 0, nil, err
	}
	return FrameType(hdr[4]), body, nil
}

// readFrame is ReadFrame for a buffered reader: the header is peeked from
// the buffer, so only the body is allocated. With an opener, the frame is
// sealed (see seal.go): N counts the ciphertext and its tag, up to
// max+sealOverhead, and the frame is opened before it is returned.
func readFrame(br *bufio.Reader, max int, op *opener) (FrameType, []byte, error) {
	hdr, err := br.Peek(4)
	if err != nil {
		if len(hdr) > 0 {
			return 0, nil, noEOF(err)
		}
		return 0, nil, err
	}
	var prefix [4]byte
	copy(prefix[:], hdr)
	if op != nil {
		max += sealOverhead
	}
	n, err := checkLength(binary.BigEndian.Uint32(hdr), max)
	if _, derr := br.Discard(4); derr != nil {
		return 0, nil, noEOF(derr)
	}
	if err != nil {
		return 0, nil, err
	}
	if op != nil {
		if n < 1+sealOverhead {
			return 0, nil, fmt.Errorf("%w: sealed frame of %d bytes is shorter than its tag", ErrMalformed, n)
		}
		sealed, err := readBody(br, n)
		if err != nil {
			return 0, nil, err
		}
		plain, err := op.open(prefix[:], sealed)
		if err != nil {
			return 0, nil, err
		}
		return FrameType(plain[0]), plain[1:], nil
	}
	typ, err := br.ReadByte()
	if err != nil {
		return 0, nil, noEOF(err)
	}
	body, err := readBody(br, n-1)
	if err != nil {
		return 0, nil, err
	}
	return FrameType(typ), body, nil
}

// bodyChunk is the most a body read allocates ahead of the bytes that
// arrived: a body up to bodyChunk is allocated at once, a larger one
// starts at bodyChunk and doubles as it fills, so its allocation never
// exceeds twice what the peer actually sent (plus bodyChunk).
const bodyChunk = 32 << 10

// readBody reads an n-byte body from r, growing its buffer with the bytes
// received instead of trusting n.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= bodyChunk {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, noEOF(err)
		}
		return b, nil
	}
	b := make([]byte, 0, bodyChunk)
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(2*cap(b), n))
			copy(nb, b)
			b = nb
		}
		m, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	return b, nil
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
// prefix, a size within max and a user frame type.
func checkSendFrame(frame []byte, max int) error {
	if len(frame) < frameHeaderSize {
		return fmt.Errorf("%w: %d bytes is shorter than a frame header", ErrMalformed, len(frame))
	}
	n := binary.BigEndian.Uint32(frame)
	if uint64(n) != uint64(len(frame)-4) {
		return fmt.Errorf("%w: length prefix %d does not match %d bytes (build frames with AppendFrame)", ErrMalformed, n, len(frame)-4)
	}
	if uint64(n) > uint64(max) {
		return fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	}
	if FrameType(frame[4]) < FirstUserFrame {
		return fmt.Errorf("%w: %v is a link-internal frame type", ErrMalformed, FrameType(frame[4]))
	}
	return nil
}
