package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Sealed frames. With a Secret (and without TLS, which protects the
// connection itself), every frame after the handshake is sealed with
// AES-256-GCM:
//
//	[4-byte big-endian N][AES-256-GCM(type byte + body) and its 16-byte tag]
//
// N = 1 + len(body) + 16 counts the ciphertext and the tag. The length
// prefix stays in the clear, so a reader can bound the frame before it
// allocates anything, and is authenticated as the additional data. Each
// direction of a connection has its own key, derived with HKDF-SHA256 from
// the secret, both handshake nonces, both node names and the cluster name,
// and its own nonce: a counter of the frames sent in that direction, so a
// frame that is replayed, reordered, dropped or altered fails to open.

// sealOverhead is what sealing adds to a frame's length N: the GCM tag.
const sealOverhead = 16

// maxSealed is the number of frames one key seals before the connection is
// closed (and redialled with fresh keys). GCM's 96-bit nonces carry a
// 64-bit counter here; the bound keeps far below it.
const maxSealed = 1 << 48

// keyInfo labels the HKDF output, so keys derived from the same secret for
// another purpose (the gossip key) never match these.
const keyInfo = "ringcast transport v2 frame keys"

// session holds the two directions of a sealed connection.
type session struct {
	seal *sealer
	open *opener
}

// sealer seals the frames sent in one direction. It is used by one
// goroutine at a time.
type sealer struct {
	aead  cipher.AEAD
	count uint64
	nonce [12]byte
}

// opener opens the frames received in one direction. It is used by one
// goroutine at a time.
type opener struct {
	aead  cipher.AEAD
	count uint64
	nonce [12]byte
	ad    [4]byte // the length prefix of the frame being opened
	peer  string
}

// newSession derives the keys of a connection from the handshake: the
// dialer's key seals what the dialer sends. isDialer tells which side
// this end is.
func newSession(secret []byte, cluster, dialer, listener string, dialerNonce, listenerNonce []byte, isDialer bool) (*session, error) {
	salt := make([]byte, 0, len(dialerNonce)+len(listenerNonce))
	salt = append(append(salt, dialerNonce...), listenerNonce...)
	info := []byte(keyInfo)
	for _, field := range []string{cluster, dialer, listener} {
		info = binary.BigEndian.AppendUint32(info, uint32(len(field)))
		info = append(info, field...)
	}
	keys, err := hkdf.Key(sha256.New, secret, salt, string(info), 64)
	if err != nil {
		return nil, fmt.Errorf("%w: deriving frame keys: %w", ErrHandshake, err)
	}
	toListener, err := newGCM(keys[:32])
	if err != nil {
		return nil, err
	}
	toDialer, err := newGCM(keys[32:])
	if err != nil {
		return nil, err
	}
	if isDialer {
		return &session{seal: &sealer{aead: toListener}, open: &opener{aead: toDialer, peer: listener}}, nil
	}
	return &session{seal: &sealer{aead: toDialer}, open: &opener{aead: toListener, peer: dialer}}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return aead, nil
}

// sealFrame appends the sealed form of frame, a complete plain frame, to
// dst. It does not allocate when dst has room for len(frame)+sealOverhead
// more bytes.
func (s *sealer) sealFrame(dst, frame []byte) ([]byte, error) {
	if s.count >= maxSealed {
		return dst, fmt.Errorf("%w: %d frames sealed with one key; reconnecting for fresh keys", ErrClosed, s.count)
	}
	binary.BigEndian.PutUint64(s.nonce[4:], s.count)
	s.count++
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)-4+sealOverhead))
	return s.aead.Seal(dst, s.nonce[:], frame[4:], dst[start:start+4]), nil
}

// sealBatch appends to dst the sealed form of each frame of batch, which
// holds complete plain frames back to back.
func (s *sealer) sealBatch(dst, batch []byte) ([]byte, error) {
	for off := 0; off < len(batch); {
		end := off + 4 + int(binary.BigEndian.Uint32(batch[off:]))
		var err error
		if dst, err = s.sealFrame(dst, batch[off:end]); err != nil {
			return dst, err
		}
		off = end
	}
	return dst, nil
}

// open authenticates and decrypts a sealed frame in place and returns its
// plain type byte and body; prefix is the frame's length prefix. A frame
// that does not open is an ErrAuth error: the connection must be closed,
// as nothing after it can be trusted.
func (o *opener) open(prefix []byte, sealed []byte) ([]byte, error) {
	if o.count >= maxSealed {
		return nil, fmt.Errorf("%w: %d frames opened with one key", ErrAuth, o.count)
	}
	binary.BigEndian.PutUint64(o.nonce[4:], o.count)
	// The prefix is copied into the opener so that handing it to the
	// AEAD interface does not move a local to the heap.
	copy(o.ad[:], prefix)
	plain, err := o.aead.Open(sealed[:0], o.nonce[:], sealed, o.ad[:])
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d from %q does not authenticate (tampered, replayed or sealed with another key)", ErrAuth, o.count, o.peer)
	}
	o.count++
	return plain, nil
}

// wireSize is the size on the wire of a frame with a body of n bytes,
// sealed if op is not nil.
func wireSize(n int, op *opener) int {
	if op != nil {
		return frameHeaderSize + n + sealOverhead
	}
	return frameHeaderSize + n
}
