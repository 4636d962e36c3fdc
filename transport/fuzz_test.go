package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// fuzzMaxFrame is the frame limit used by the fuzzers.
const fuzzMaxFrame = 1 << 12

// fuzzSeeds returns valid frames of several types, one per seed, plus a
// stream of all of them.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	var all []byte
	add := func(f []byte) {
		if len(f) <= fuzzMaxFrame {
			seeds = append(seeds, f)
			all = append(all, f...)
		}
	}
	for _, f := range sampleFrames() {
		add(AppendFrame(nil, f.typ, f.body))
	}
	for _, m := range handshakeMessages() {
		add(AppendMessage(nil, m))
	}
	seeds = append(seeds, pingFrame, append(all, pingFrame...))
	return seeds
}

// decodeStream reads every frame from r and describes each: its type and
// body, and for a handshake frame the body's decoding (re-encoded, so that
// results compare byte for byte). It ends with the error that stopped it.
func decodeStream(t *testing.T, r io.Reader) []string {
	var out []string
	for {
		typ, body, err := ReadFrame(r, fuzzMaxFrame)
		if err != nil {
			return append(out, "end: "+err.Error())
		}
		out = append(out, fmt.Sprintf("frame %v % x", typ, body))
		out = append(out, decodeBody(t, typ, body))
	}
}

// decodeBody decodes a handshake body with typ's decoder and checks the
// codec's invariants: errors wrap ErrMalformed; a decoded message
// re-encodes to a body that decodes to the same message.
func decodeBody(t *testing.T, typ FrameType, body []byte) string {
	if typ == FramePing {
		return fmt.Sprintf("ping, empty %v", len(body) == 0)
	}
	m := newHandshakeMessage(typ)
	if m == nil {
		return "not a handshake frame"
	}
	if err := m.DecodeBody(body); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: decode error %v does not wrap ErrMalformed", typ, err)
		}
		return "malformed: " + err.Error()
	}
	again := m.AppendBody(nil)
	m2 := newHandshakeMessage(typ)
	if err := m2.DecodeBody(again); err != nil {
		t.Fatalf("%v: re-encoded body does not decode: %v", typ, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("%v: re-encoding changed the message:\n%+v\n%+v", typ, m, m2)
	}
	return fmt.Sprintf("ok % x", again)
}

// FuzzReadFrame feeds a byte stream through ReadFrame split at every
// offset into two reads, plainly and through a small bufio.Reader: the
// frames, their decoding and the final error must be the same for every
// split, and nothing may panic.
func FuzzReadFrame(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*fuzzMaxFrame {
			return
		}
		want := decodeStream(t, bytes.NewReader(data))
		for i := 0; i <= len(data); i++ {
			split := func() io.Reader {
				return io.MultiReader(bytes.NewReader(data[:i]), bytes.NewReader(data[i:]))
			}
			got := decodeStream(t, split())
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("split at %d:\n got %s\nwant %s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			got = decodeStream(t, bufio.NewReaderSize(split(), 16))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("bufio, split at %d:\n got %s\nwant %s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
}

// FuzzDecodeBody decodes arbitrary bodies with every handshake decoder,
// the only bodies a Transport decodes.
func FuzzDecodeBody(f *testing.F) {
	for _, m := range handshakeMessages() {
		f.Add(m.AppendBody(nil))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for typ := FrameType(1); typ < FirstUserFrame; typ++ {
			decodeBody(t, typ, body)
		}
	})
}

// fuzzSession returns the two ends of a sealed connection with fixed keys.
func fuzzSession(t testing.TB) (dialer, listener *session) {
	nd, nl := bytes.Repeat([]byte{1}, nonceSize), bytes.Repeat([]byte{2}, nonceSize)
	d, err := newSession([]byte("fuzz secret"), "c", "a", "b", nd, nl, true)
	if err != nil {
		t.Fatal(err)
	}
	l, err := newSession([]byte("fuzz secret"), "c", "a", "b", nd, nl, false)
	if err != nil {
		t.Fatal(err)
	}
	return d, l
}

// FuzzOpenSealed reads arbitrary bytes as sealed frames: nothing may
// panic, every error must be one a link reports, and forged input must
// never open. The seeds are frames sealed with the listener's key, which
// do open; the fuzzer mutates them.
func FuzzOpenSealed(f *testing.F) {
	d, _ := fuzzSession(f)
	var stream []byte
	for _, s := range fuzzSeeds() {
		sealed, err := d.seal.sealBatch(nil, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
		stream = append(stream, sealed...)
	}
	f.Add(stream)
	f.Add([]byte{0, 0, 0, 16, 1})
	f.Add([]byte{0, 0, 0, 17})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 8*fuzzMaxFrame {
			return
		}
		// Seal the input too, and open it back.
		ds, ls := fuzzSession(t)
		frame := AppendFrame(nil, FirstUserFrame, data)
		sealed, err := ds.seal.sealFrame(nil, frame)
		if err != nil {
			t.Fatal(err)
		}
		typ, body, err := readFrame(bufio.NewReader(bytes.NewReader(sealed)), len(frame), ls.open)
		if err != nil || typ != FirstUserFrame || !bytes.Equal(body, data) {
			t.Fatalf("round trip: %v % x, %v", typ, body, err)
		}
		// Open the input as a stream of sealed frames.
		_, ls = fuzzSession(t)
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for opened := 0; ; opened++ {
			_, _, err := readFrame(br, fuzzMaxFrame, ls.open)
			if err == nil {
				continue
			}
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrAuth) &&
				!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			if errors.Is(err, ErrAuth) && ls.open.count != uint64(opened) {
				t.Fatalf("counter %d after %d frames", ls.open.count, opened)
			}
			return
		}
	})
}
