package gateway

import (
	"encoding/json"
	"testing"
)

// FuzzParsePresence checks what a join's {"presence": ...} may become: a
// refusal, or a key and a meta that encode, with the gateway's phx_ref,
// into a valid Phoenix meta whose phx_ref the client cannot forge.
func FuzzParsePresence(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `{"key":"alice"}`, `{"key":""}`, `{"key":7}`,
		`{"key":"a","meta":{"status":"away","n":1}}`, `{"meta":{ }}`, `{"meta":{"phx_ref":"x"}}`,
		`{"meta":{"phx_ref_prev":"x"}}`, `{"meta":[1]}`, `{"meta":"s"}`, `{"meta":{"a":{"b":[1,2,{"c":null}]}}}`,
		`{"key":"a\u0000b"}`, `{"meta":{"a":"\ud800"}}`, `{"meta":{"a":1,"a":2}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, reason := parsePresence(raw)
		if reason != "" {
			if p.key != "" || p.meta != nil {
				t.Fatalf("refused %q (%s) but kept %+v", raw, reason, p)
			}
			return
		}
		if p.meta == nil {
			return
		}
		if len(p.meta) > MaxPresenceMeta || p.meta[0] != '{' {
			t.Fatalf("meta %q of %q", p.meta, raw)
		}
		enc := appendPresenceMeta(nil, "ref-1", p.meta)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(enc, &m); err != nil {
			t.Fatalf("meta of %q encodes as invalid JSON %s: %v", raw, enc, err)
		}
		if string(m["phx_ref"]) != `"ref-1"` {
			t.Fatalf("meta of %q encodes phx_ref %s: %s", raw, m["phx_ref"], enc)
		}
	})
}
