package notify

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// The request decoders accept only what the API documents: every value
// they return passes the validation, and everything they refuse is
// ErrInvalid (a 400).

func FuzzParseSignup(f *testing.F) {
	f.Add([]byte(`{"id":"alice","email":"alice@example.com","password":"12345678"}`))
	f.Add([]byte(`{"id":"alice","email":"a@b","password":"12345678","x":1}`))
	f.Add([]byte(`{"id":"ALICE"}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`{"id":"\u0000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseSignup(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: %v is not ErrInvalid", data, err)
			}
			return
		}
		if ValidateUserID(req.ID) != nil || ValidateEmail(req.Email) != nil || ValidatePassword(req.Password) != nil {
			t.Fatalf("%q accepted as %+v", data, req)
		}
	})
}

func FuzzParseLogin(f *testing.F) {
	f.Add([]byte(`{"id":"alice","password":"12345678"}`))
	f.Add([]byte(`{"id":"alice"}`))
	f.Add([]byte(`{"id":"alice","password":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseLogin(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: %v is not ErrInvalid", data, err)
			}
			return
		}
		if req.ID == "" || req.Password == "" || len(req.ID) > MaxUserID || len(req.Password) > MaxPassword {
			t.Fatalf("%q accepted as %+v", data, req)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	f.Add([]byte(`{"name":"news","description":"daily"}`))
	f.Add([]byte(`{"name":"a:b.c-d_e"}`))
	f.Add([]byte(`{"name":".."}`))
	f.Add([]byte(`{"name":"x","description":"\u0007"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseTopic(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: %v is not ErrInvalid", data, err)
			}
			return
		}
		if ValidateTopicName(req.Name) != nil || !utf8.ValidString(req.Description) || len(req.Description) > MaxDescription {
			t.Fatalf("%q accepted as %+v", data, req)
		}
		if err := ValidateTopicName(req.Name); err == nil && (req.Name == "." || req.Name == "..") {
			t.Fatalf("%q accepted", req.Name)
		}
	})
}

func FuzzParseRead(f *testing.F) {
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Add([]byte(`{"seq":18446744073709551615}`))
	f.Add([]byte(`{"seq":1e3}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := parseRead(data); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q: %v is not ErrInvalid", data, err)
		}
	})
}

func FuzzControlEvent(f *testing.F) {
	f.Add([]byte(`{"type":"read","topic":"news","read_seq":7}`))
	f.Add([]byte(`{"type":"read_all"}`))
	f.Add([]byte(`{"type":"unsubscribed","topic":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseControlEvent(data)
		if err != nil {
			return
		}
		b, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("%q parsed as %+v, which does not marshal: %v", data, ev, err)
		}
		back, err := ParseControlEvent(b)
		if err != nil || back != ev {
			t.Fatalf("%q: round trip %+v -> %s -> %+v %v", data, ev, b, back, err)
		}
	})
}
