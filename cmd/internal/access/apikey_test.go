package access

import (
	"net/http"
	"strings"
	"testing"
)

const (
	key1 = "0123456789abcdef-first"
	key2 = "0123456789abcdef-second"
)

func TestParseAPIKeys(t *testing.T) {
	ks, err := ParseAPIKeys(" " + key1 + " , " + key2)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 2 || !ks.Match(key1) || !ks.Match(key2) {
		t.Fatalf("keys: %d, match %v %v", ks.Len(), ks.Match(key1), ks.Match(key2))
	}
	for _, bad := range []string{"", key1 + "x", key1[:len(key1)-1], strings.ToUpper(key1), " " + key1} {
		if ks.Match(bad) {
			t.Errorf("%q matched", bad)
		}
	}
	none, err := ParseAPIKeys("  ")
	if err != nil || none.Len() != 0 || none.Match("") || none.Match(key1) {
		t.Errorf("no keys: %d %v", none.Len(), err)
	}
	for in, want := range map[string]string{
		"short":                   "key 1 has 5 bytes",
		key1 + ",":                "key 2 is empty",
		key1 + ",,":               "key 2 is empty",
		"0123456789 abcdef":       "printable ASCII",
		"0123456789abcdéf":        "printable ASCII",
		strings.Repeat("k", 1025): "1024",
	} {
		if _, err := ParseAPIKeys(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestRequestCredentials(t *testing.T) {
	ks, err := ParseAPIKeys(key1 + "," + key2)
	if err != nil {
		t.Fatal(err)
	}
	req := func(h map[string]string) *http.Request {
		r, err := http.NewRequest(http.MethodPost, "http://x/api/publish", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	for name, tc := range map[string]struct {
		h    map[string]string
		want Credentials
		err  bool
	}{
		"none":            {nil, Credentials{}, false},
		"X-API-Key":       {map[string]string{"X-API-Key": key2}, Credentials{APIKey: true}, false},
		"bad X-API-Key":   {map[string]string{"X-API-Key": "nope-nope-nope-nope"}, Credentials{}, true},
		"bearer key":      {map[string]string{"Authorization": "Bearer " + key1}, Credentials{APIKey: true}, false},
		"bearer lower":    {map[string]string{"Authorization": "bearer " + key1}, Credentials{APIKey: true}, false},
		"bearer token":    {map[string]string{"Authorization": "Bearer a.b.c"}, Credentials{Token: "a.b.c"}, false},
		"basic":           {map[string]string{"Authorization": "Basic eDp5"}, Credentials{}, false},
		"bad key, bearer": {map[string]string{"X-API-Key": "nope-nope-nope-nope", "Authorization": "Bearer " + key1}, Credentials{}, true},
	} {
		got, err := ks.RequestCredentials(req(tc.h))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: %+v %v, want %+v (error %v)", name, got, err, tc.want, tc.err)
		}
	}
}
