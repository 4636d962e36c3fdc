package ring

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

func TestMetaRoundTrip(t *testing.T) {
	in := Member{Roles: []string{RoleTopics, RoleGateway}, PeerAddr: "10.0.0.1:4000", Version: testProtocolVersion}
	for _, leaving := range []bool{false, true} {
		b, err := encodeMeta(in, leaving)
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeMeta(b, testProtocolVersion)
		if err != nil {
			t.Fatal(err)
		}
		if !out.member.equal(in) || out.leaving != leaving {
			t.Fatalf("decoded %+v, want %+v leaving=%v", out, in, leaving)
		}
	}
	// The largest metadata New accepts fits memberlist's limit.
	big := Member{Roles: []string{RoleTopics, RoleGateway}, PeerAddr: strings.Repeat("h", MaxPeerAddrLen), Version: testProtocolVersion}
	if b, err := encodeMeta(big, true); err != nil || len(b) > memberlist.MetaMaxSize {
		t.Fatalf("largest metadata: %d bytes, %v", len(b), err)
	}
}

// encodeMap encodes kv (alternating keys and values) as a msgpack map.
func encodeMap(t *testing.T, kv ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeMapLen(len(kv) / 2); err != nil {
		t.Fatal(err)
	}
	for _, x := range kv {
		if err := enc.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestMetaUnknownFieldsSkipped(t *testing.T) {
	b := encodeMap(t,
		"future", map[string]any{"a": []any{1, "x", 2.5, nil, true}},
		"v", int(testProtocolVersion),
		"blob", []byte{1, 2, 3},
		"r", []string{RoleTopics, "archive"},
		"n", -7,
		"p", "127.0.0.1:1",
	)
	md, err := decodeMeta(b, testProtocolVersion)
	if err != nil {
		t.Fatal(err)
	}
	m := md.member
	if md.leaving {
		t.Fatal("leaving without the mark")
	}
	if !slices.Equal(m.Roles, []string{RoleTopics, "archive"}) || m.PeerAddr != "127.0.0.1:1" || m.Version != testProtocolVersion {
		t.Fatalf("decoded %+v", m)
	}
	if !m.HasRole(RoleTopics) {
		t.Fatal("role lost")
	}
}

func TestMetaRejected(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errMetaInvalid},
		{"oversize", make([]byte, memberlist.MetaMaxSize+1), errMetaInvalid},
		{"not a map", []byte{0x93, 1, 2, 3}, errMetaInvalid},
		{"garbage", []byte("hello world"), errMetaInvalid},
		{"no version", encodeMap(t, "r", []string{RoleTopics}), errMetaInvalid},
		{"version 0", encodeMap(t, "v", 0), errMetaVersion},
		{"older version", encodeMap(t, "v", int(testProtocolVersion)-1), errMetaVersion},
		{"future version", encodeMap(t, "v", int(testProtocolVersion)+1), errMetaVersion},
		{"version overflow", encodeMap(t, "v", 257), errMetaVersion},
		{"version string", encodeMap(t, "v", "1"), errMetaInvalid},
		{"roles not array", encodeMap(t, "v", int(testProtocolVersion), "r", "topics"), errMetaInvalid},
		{"too many roles", encodeMap(t, "v", int(testProtocolVersion), "r", slices.Repeat([]string{"x"}, maxMetaRoles+1)), errMetaInvalid},
		{"role too long", encodeMap(t, "v", int(testProtocolVersion), "r", []string{strings.Repeat("r", maxRoleLen+1)}), errMetaInvalid},
		{"peer too long", encodeMap(t, "v", int(testProtocolVersion), "p", strings.Repeat("p", MaxPeerAddrLen+1)), errMetaInvalid},
		{"leaving not bool", encodeMap(t, "v", int(testProtocolVersion), "l", 1), errMetaInvalid},
		{"trailing bytes", append(encodeMap(t, "v", int(testProtocolVersion)), 0xc0), errMetaInvalid},
		{"truncated", encodeMap(t, "v", int(testProtocolVersion), "p", "127.0.0.1:1")[:10], errMetaInvalid},
		{"extension", encodeMap(t, "v", int(testProtocolVersion), "x", msgpack.RawMessage{0xd4, 1, 2}), errMetaInvalid},
		// Length prefixes far beyond the input are refused before any
		// allocation of that size.
		{"huge map", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, errMetaInvalid},
		{"huge roles", []byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'r', 0xdd, 0xff, 0xff, 0xff, 0xff}, errMetaInvalid},
		{"huge string", []byte{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff}, errMetaInvalid},
		{"huge skipped string", []byte{0x81, 0xa1, 'z', 0xdb, 0x7f, 0xff, 0xff, 0xff}, errMetaInvalid},
		{"deep nesting", append([]byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'z'}, bytes.Repeat([]byte{0x91}, 40)...), errMetaInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeMeta(tc.b, testProtocolVersion)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decodeMeta = %+v, %v; want %v", m, err, tc.want)
			}
		})
	}
}

func TestMetaHugePrefixDoesNotAllocate(t *testing.T) {
	b := []byte{0x81, 0xa1, 'z', 0xdb, 0x7f, 0xff, 0xff, 0xff}
	allocs := testing.Benchmark(func(b2 *testing.B) {
		b2.ReportAllocs()
		for b2.Loop() {
			_, _ = decodeMeta(b, testProtocolVersion)
		}
	})
	if per := allocs.AllocedBytesPerOp(); per > 4096 {
		t.Fatalf("decoding a bogus length prefix allocated %d bytes", per)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := encodeMeta(Member{Roles: []string{RoleTopics}, PeerAddr: "127.0.0.1:9000", Version: testProtocolVersion}, true)
	f.Add(good)
	f.Add([]byte{0x81, 0xa1, 'z', 0xdb, 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{0x83, 0xa1, 'v', 0x01, 0xa1, 'r', 0x90, 0xa1, 'p', 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := decodeMeta(b, testProtocolVersion)
		if err != nil {
			return
		}
		m := md.member
		if m.Version != testProtocolVersion {
			t.Fatalf("accepted version %d", m.Version)
		}
		if len(m.Roles) > maxMetaRoles || len(m.PeerAddr) > MaxPeerAddrLen {
			t.Fatalf("accepted out-of-bounds metadata %+v", m)
		}
		again, err := encodeMeta(m, md.leaving)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := decodeMeta(again, testProtocolVersion)
		if err != nil || !m2.member.equal(m) || m2.leaving != md.leaving {
			t.Fatalf("round trip: %+v, %v; want %+v", m2, err, m)
		}
	})
}
