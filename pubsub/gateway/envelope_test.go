package gateway

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	cases := []struct {
		event   string
		payload []byte
		binary  bool
	}{
		{"event", []byte(`{"message":"hi"}`), false},
		{"e", nil, false},
		{"blob", []byte{0, 0xff, 1}, true},
		{strings.Repeat("e", MaxEventLen), bytes.Repeat([]byte{7}, 1<<16), true},
	}
	for _, tc := range cases {
		data := EncodeEnvelope(tc.event, tc.payload, tc.binary)
		event, payload, binary, err := DecodeEnvelope(data)
		if err != nil {
			t.Fatalf("%q: %v", tc.event, err)
		}
		if event != tc.event || !bytes.Equal(payload, tc.payload) || binary != tc.binary {
			t.Fatalf("round trip of %q gave %q %q %v", tc.event, event, payload, binary)
		}
	}
	// The envelope does not alias the payload.
	p := []byte("abc")
	data := EncodeEnvelope("e", p, true)
	p[0] = 'X'
	if _, payload, _, _ := DecodeEnvelope(data); string(payload) != "abc" {
		t.Fatalf("envelope aliases its payload: %q", payload)
	}
	if EncodeEnvelope("", nil, false) != nil || EncodeEnvelope(strings.Repeat("e", MaxEventLen+1), nil, false) != nil {
		t.Fatal("EncodeEnvelope accepted an event of invalid length")
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	for _, data := range [][]byte{
		nil,
		{0x10},
		{0x20, 1, 'e'},        // version 2
		{0x13, 1, 'e'},        // kind 3
		{0x10, 0, 'e'},        // empty event
		{0x10, 5, 'e', 'v'},   // event longer than the data
		{0x11, 255, 'e', 'v'}, // same, binary
	} {
		if _, _, _, err := DecodeEnvelope(data); !errors.Is(err, ErrMalformedEnvelope) {
			t.Errorf("%q: err %v, want ErrMalformedEnvelope", data, err)
		}
	}
}

func TestValidateTopicAndEvent(t *testing.T) {
	good := []string{"topics:matrix", "a", "room:é", strings.Repeat("x", 255), "with space", "emoji:🙂"}
	bad := map[string]string{
		"":                       "empty",
		strings.Repeat("x", 256): "longer than 255 bytes",
		"tab\there":              "control character",
		"del\x7f":                "control character",
		"c1\u0085":               "control character",
		"bad\xffutf8":            "not valid UTF-8",
	}
	for _, s := range good {
		if err := ValidateTopic(s); err != nil {
			t.Errorf("ValidateTopic(%q): %v", s, err)
		}
		if err := ValidateEvent(s); err != nil {
			t.Errorf("ValidateEvent(%q): %v", s, err)
		}
	}
	for s, reason := range bad {
		err := ValidateTopic(s)
		if !errors.Is(err, ErrInvalidTopic) || !strings.HasSuffix(err.Error(), reason) {
			t.Errorf("ValidateTopic(%q) = %v, want %s", s, err, reason)
		}
		if err := ValidateEvent(s); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("ValidateEvent(%q) = %v", s, err)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	cases := map[string]string{
		"plain":       `"plain"`,
		`q"b\`:        `"q\"b\\"`,
		"nl\n\r\t":    `"nl\n\r\t"`,
		"\x00\x1f":    `"\u0000\u001f"`,
		"é🙂<>&\u2028": "\"é🙂<>&\u2028\"",
		"bad\xff":     `"bad\ufffd"`,
	}
	for in, want := range cases {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}
