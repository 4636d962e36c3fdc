package ring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Member is one node of the cluster as advertised in its gossip metadata.
//
// A Member is a plain value. Members returned by a Ring or a View share their
// Roles slice with the View they come from: treat it as read-only (appending
// to it is safe, its capacity is clipped).
type Member struct {
	// Name is the unique node name (memberlist's node name).
	Name string
	// Roles the member advertises (RoleTopics, RoleGateway; roles unknown
	// to this version are kept).
	Roles []string
	// PeerAddr is the node-to-node link address ("host:port") the member
	// advertises; it may be empty.
	PeerAddr string
	// GossipAddr is the member's memberlist address ("host:port").
	GossipAddr string
	// Version is the ringcast protocol version the member speaks.
	Version uint8
}

// HasRole reports whether m advertises role.
func (m Member) HasRole(role string) bool {
	return slices.Contains(m.Roles, role)
}

// String returns the member's name.
func (m Member) String() string {
	return m.Name
}

// equal reports whether m and o describe the same member identically.
func (m Member) equal(o Member) bool {
	return m.Name == o.Name && m.PeerAddr == o.PeerAddr && m.GossipAddr == o.GossipAddr &&
		m.Version == o.Version && slices.Equal(m.Roles, o.Roles)
}

// Metadata wire format: a msgpack map with short string keys. Unknown keys are
// skipped so later versions may add fields.
const (
	metaKeyVersion = "v"
	metaKeyRoles   = "r"
	metaKeyPeer    = "p"
	metaKeyLeaving = "l"

	// maxMetaRoles bounds the roles read from a remote member.
	maxMetaRoles = 2 * MaxRoles
	// maxMetaFields bounds the number of map entries read.
	maxMetaFields = 32
	// maxMetaDepth bounds the nesting of skipped unknown values.
	maxMetaDepth = 8
	// maxMetaKeyLen bounds a map key.
	maxMetaKeyLen = 32
)

// Errors for metadata that is left out of the ring. They are logged, never
// returned by the exported API.
var (
	errMetaInvalid = errors.New("ring: invalid member metadata")
	errMetaVersion = errors.New("ring: unsupported member protocol version")
)

// encodeMeta encodes the metadata advertised for m (Name and GossipAddr are
// carried by memberlist itself). leaving marks a member that is about to
// leave gracefully.
func encodeMeta(m Member, leaving bool) ([]byte, error) {
	fields := 3
	if leaving {
		fields++
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	err := errors.Join(
		enc.EncodeMapLen(fields),
		enc.EncodeString(metaKeyVersion),
		enc.EncodeUint8(m.Version),
		enc.EncodeString(metaKeyRoles),
		enc.EncodeArrayLen(len(m.Roles)),
	)
	for _, r := range m.Roles {
		err = errors.Join(err, enc.EncodeString(r))
	}
	err = errors.Join(err,
		enc.EncodeString(metaKeyPeer),
		enc.EncodeString(m.PeerAddr),
	)
	if leaving {
		err = errors.Join(err,
			enc.EncodeString(metaKeyLeaving),
			enc.EncodeBool(true),
		)
	}
	if err != nil {
		return nil, err
	}
	if buf.Len() > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("member metadata is %d bytes, limit %d", buf.Len(), memberlist.MetaMaxSize)
	}
	return buf.Bytes(), nil
}

// metadata is a decoded metadata record.
type metadata struct {
	member  Member
	leaving bool
}

// memberFromNode decodes a memberlist node's metadata into a Member. It fails
// when the metadata is malformed or advertises a protocol version other than
// version.
func memberFromNode(n *memberlist.Node, version uint8) (metadata, error) {
	md, err := decodeMeta(n.Meta, version)
	if err != nil {
		return metadata{}, err
	}
	md.member.Name = n.Name
	md.member.GossipAddr = n.Address()
	return md, nil
}

// decodeMeta decodes member metadata and checks that it advertises protocol
// version version. It reads untrusted bytes: every length is checked against
// the bytes that remain before anything is allocated.
func decodeMeta(b []byte, version uint8) (metadata, error) {
	var md metadata
	m := &md.member
	if len(b) == 0 {
		return md, fmt.Errorf("%w: empty", errMetaInvalid)
	}
	if len(b) > memberlist.MetaMaxSize {
		return md, fmt.Errorf("%w: %d bytes, limit %d", errMetaInvalid, len(b), memberlist.MetaMaxSize)
	}
	mr := newMetaReader(b)
	n, err := mr.mapLen()
	if err != nil {
		return md, err
	}
	if n > maxMetaFields {
		return md, fmt.Errorf("%w: %d fields", errMetaInvalid, n)
	}
	var haveVersion bool
	for range n {
		key, err := mr.str(maxMetaKeyLen)
		if err != nil {
			return md, err
		}
		switch key {
		case metaKeyVersion:
			v, err := mr.int()
			if err != nil {
				return md, err
			}
			if v < 0 || v > math.MaxUint8 {
				return md, fmt.Errorf("%w: %d", errMetaVersion, v)
			}
			m.Version, haveVersion = uint8(v), true
		case metaKeyRoles:
			k, err := mr.arrayLen()
			if err != nil {
				return md, err
			}
			if k > maxMetaRoles {
				return md, fmt.Errorf("%w: %d roles, limit %d", errMetaInvalid, k, maxMetaRoles)
			}
			roles := make([]string, 0, k)
			for range k {
				r, err := mr.str(maxRoleLen)
				if err != nil {
					return md, err
				}
				roles = append(roles, r)
			}
			m.Roles = roles
		case metaKeyLeaving:
			l, err := mr.bool()
			if err != nil {
				return md, err
			}
			md.leaving = l
		case metaKeyPeer:
			p, err := mr.str(MaxPeerAddrLen)
			if err != nil {
				return md, err
			}
			m.PeerAddr = p
		default:
			if err := mr.skip(0); err != nil {
				return md, err
			}
		}
	}
	if mr.r.Len() != 0 {
		return md, fmt.Errorf("%w: %d trailing bytes", errMetaInvalid, mr.r.Len())
	}
	if !haveVersion {
		return md, fmt.Errorf("%w: no version", errMetaInvalid)
	}
	if m.Version != version {
		return md, fmt.Errorf("%w: %d, want %d", errMetaVersion, m.Version, version)
	}
	return md, nil
}

// metaReader reads msgpack values from a byte slice with bounds checks. The
// decoder reads straight from r (a bytes.Reader is an io.ByteScanner, so the
// decoder adds no buffering), which makes r.Len() the exact number of bytes
// left.
type metaReader struct {
	r *bytes.Reader
	d *msgpack.Decoder
}

func newMetaReader(b []byte) *metaReader {
	r := bytes.NewReader(b)
	return &metaReader{r: r, d: msgpack.NewDecoder(r)}
}

// peek returns the next msgpack code without consuming it.
func (mr *metaReader) peek() (byte, error) {
	c, err := mr.d.PeekCode()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	return c, nil
}

// bool reads a boolean.
func (mr *metaReader) bool() (bool, error) {
	c, err := mr.peek()
	if err != nil {
		return false, err
	}
	if c != msgpcode.True && c != msgpcode.False {
		return false, fmt.Errorf("%w: code %#x, want a boolean", errMetaInvalid, c)
	}
	v, err := mr.d.DecodeBool()
	if err != nil {
		return false, fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	return v, nil
}

// int reads an integer.
func (mr *metaReader) int() (int64, error) {
	c, err := mr.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case msgpcode.IsFixedNum(c), c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32,
		c == msgpcode.Uint64, c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
	default:
		return 0, fmt.Errorf("%w: code %#x, want an integer", errMetaInvalid, c)
	}
	v, err := mr.d.DecodeInt64()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	return v, nil
}

// mapLen reads a map header whose entries fit in the remaining bytes.
func (mr *metaReader) mapLen() (int, error) {
	c, err := mr.peek()
	if err != nil {
		return 0, err
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return 0, fmt.Errorf("%w: code %#x, want a map", errMetaInvalid, c)
	}
	n, err := mr.d.DecodeMapLen()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	if n < 0 || 2*n > mr.r.Len() {
		return 0, fmt.Errorf("%w: map of %d entries in %d bytes", errMetaInvalid, n, mr.r.Len())
	}
	return n, nil
}

// arrayLen reads an array header whose elements fit in the remaining bytes.
func (mr *metaReader) arrayLen() (int, error) {
	c, err := mr.peek()
	if err != nil {
		return 0, err
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		return 0, fmt.Errorf("%w: code %#x, want an array", errMetaInvalid, c)
	}
	n, err := mr.d.DecodeArrayLen()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	if n < 0 || n > mr.r.Len() {
		return 0, fmt.Errorf("%w: array of %d elements in %d bytes", errMetaInvalid, n, mr.r.Len())
	}
	return n, nil
}

// bytesLen reads a str or bin header whose body fits in the remaining bytes
// and in limit.
func (mr *metaReader) bytesLen(limit int) (int, error) {
	c, err := mr.peek()
	if err != nil {
		return 0, err
	}
	if !msgpcode.IsString(c) && !msgpcode.IsBin(c) {
		return 0, fmt.Errorf("%w: code %#x, want a string", errMetaInvalid, c)
	}
	n, err := mr.d.DecodeBytesLen()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	if n < 0 || n > mr.r.Len() || n > limit {
		return 0, fmt.Errorf("%w: string of %d bytes (limit %d, %d left)", errMetaInvalid, n, limit, mr.r.Len())
	}
	return n, nil
}

// str reads a string of at most limit bytes.
func (mr *metaReader) str(limit int) (string, error) {
	n, err := mr.bytesLen(limit)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", nil
	}
	buf := make([]byte, n)
	if err := mr.d.ReadFull(buf); err != nil {
		return "", fmt.Errorf("%w: %v", errMetaInvalid, err)
	}
	return string(buf), nil
}

// skip skips one value of an unknown field.
func (mr *metaReader) skip(depth int) error {
	if depth > maxMetaDepth {
		return fmt.Errorf("%w: values nested deeper than %d", errMetaInvalid, maxMetaDepth)
	}
	c, err := mr.peek()
	if err != nil {
		return err
	}
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := mr.mapLen()
		if err != nil {
			return err
		}
		for range 2 * n {
			if err := mr.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := mr.arrayLen()
		if err != nil {
			return err
		}
		for range n {
			if err := mr.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		n, err := mr.bytesLen(memberlist.MetaMaxSize)
		if err != nil {
			return err
		}
		if _, err := mr.r.Seek(int64(n), io.SeekCurrent); err != nil {
			return fmt.Errorf("%w: %v", errMetaInvalid, err)
		}
		return nil
	case msgpcode.IsExt(c):
		return fmt.Errorf("%w: extension values are not allowed", errMetaInvalid)
	default:
		// Scalars: nil, booleans and numbers, at most 9 bytes each.
		if err := mr.d.Skip(); err != nil {
			return fmt.Errorf("%w: %v", errMetaInvalid, err)
		}
		return nil
	}
}
