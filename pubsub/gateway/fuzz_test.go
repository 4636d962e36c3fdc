package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

var jsonSeeds = []string{
	`["1","1","topics:matrix","phx_join",{}]`,
	`["1","1","jobs:render","phx_join",{"queue":"workers"}]`,
	`["1","1","jobs:render","phx_join",{"queue":"w","since":"3","epoch":1}]`,
	`["1","2","topics:matrix","publish",["event",{"message":"hi"}]]`,
	`[null,"3","phoenix","heartbeat",{}]`,
	`["1","4","topics:matrix","phx_leave",{}]`,
	`["1","2","t","publish",["e", {"a" : [1, 2.5, null, "\u00e9\n"]}]]`,
	`["a\"b","\\","t\u0001","e",null]`,
	`["1","2",3,"x",{}]`,
	`["1",2]`,
	`[]`,
	`{}`,
	`null`,
	`"str"`,
	`[`,
	"[\"1\",\"2\",\"t:\xff\",\"e\",{}]",
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseJSONFrame(data)
		if fr.binary {
			t.Fatal("text frame marked binary")
		}
		// Whatever was recovered must address a well-formed reply.
		reply := replyItem(&fr, statusError, appendReasonResponse(nil, "reason"))
		if reply.binary || !json.Valid(reply.raw) || !utf8.Valid(reply.raw) {
			t.Fatalf("invalid error reply %q for %q", reply.raw, data)
		}
		if err != nil {
			return
		}
		if ValidateTopic(fr.topic) != nil || ValidateEvent(fr.event) != nil || !json.Valid(fr.payload) || !utf8.Valid(fr.payload) {
			t.Fatalf("accepted an invalid frame %+v from %q", fr, data)
		}
		// Re-encoding what parsed parses to the same frame.
		again := appendJSONMessage(nil, fr.joinRef, fr.ref, fr.topic, fr.event, fr.payload)
		fr2, err := parseJSONFrame(again)
		if err != nil {
			t.Fatalf("re-encoded %q of %q does not parse: %v", again, data, err)
		}
		if fr2.joinRef != fr.joinRef || fr2.ref != fr.ref || fr2.topic != fr.topic || fr2.event != fr.event || !bytes.Equal(fr2.payload, fr.payload) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, fr2)
		}
		// The broadcast of a payload is valid JSON, with and without metadata.
		b := newBroadcast(fr.topic, fr.event, fr.payload, false, 7, 1)
		prefix := appendOptString([]byte("["), fr.joinRef)
		prefix = append(prefix, ',')
		plain := append(append([]byte{}, prefix...), b.body...)
		meta := append(append(append([]byte{}, prefix...), b.body[:len(b.body)-1]...), b.meta...)
		if !json.Valid(plain) || !json.Valid(meta) || !utf8.Valid(plain) || !utf8.Valid(meta) {
			t.Fatalf("invalid broadcast %q / %q", plain, meta)
		}
	})
}

func FuzzParseBinary(f *testing.F) {
	f.Add(binaryPush("1", "1", "topics:matrix", "phx_join", nil))
	f.Add(binaryPush("1", "2", "topics:matrix", "publish", []byte{0, 1, 2}))
	f.Add(binaryPush("", "3", "phoenix", "heartbeat", nil))
	f.Add(binaryPush("", "", "", "", nil))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 255, 255, 255, 255})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{2, 1, 1, 't', 'e', 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseBinaryFrame(data)
		if !fr.binary {
			t.Fatal("binary frame not marked binary")
		}
		reply := replyItem(&fr, statusError, appendReasonResponse(nil, "reason"))
		if !reply.binary {
			t.Fatalf("binary frame %q answered in text", data)
		}
		if err != nil {
			return
		}
		if ValidateTopic(fr.topic) != nil || ValidateEvent(fr.event) != nil {
			t.Fatalf("accepted an invalid frame %+v from %q", fr, data)
		}
		// Re-encoding gives back the same bytes.
		again := binaryPush(fr.joinRef.s, fr.ref.s, fr.topic, fr.event, fr.payload)
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded %q, parsed from %q", again, data)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(EncodeEnvelope("event", []byte(`{"message":"hi"}`), false))
	f.Add(EncodeEnvelope("e", []byte{0, 1}, true))
	f.Add([]byte{})
	f.Add([]byte{0x10, 0})
	f.Add([]byte{0x12, 1, 'e'})
	f.Fuzz(func(t *testing.T, data []byte) {
		event, payload, binary, err := DecodeEnvelope(data)
		if err != nil {
			return
		}
		if again := EncodeEnvelope(event, payload, binary); !bytes.Equal(again, data) {
			t.Fatalf("re-encoded %q, decoded from %q", again, data)
		}
	})
}
