package pubsub

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDurability(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []Durability
	}{
		{"", []Durability{}},
		{"  ;; ", []Durability{}},
		{"*=durable", []Durability{{Pattern: "*"}}},
		{"notifications:*=durable age=720h count=100000; cursor:*=memory; *=durable", []Durability{
			{Pattern: "notifications:*", MaxAge: 720 * time.Hour, MaxCount: 100000},
			{Pattern: "cursor:*", Memory: true},
			{Pattern: "*"},
		}},
		{" orders = DURABLE  COUNT=5 Age=90m ;", []Durability{{Pattern: "orders", MaxCount: 5, MaxAge: 90 * time.Minute}}},
		{`"room 1"=memory;"a;b=c\"d"=durable age=1s`, []Durability{
			{Pattern: "room 1", Memory: true},
			{Pattern: `a;b=c"d`, MaxAge: time.Second},
		}},
		{"présence:*=memory", []Durability{{Pattern: "présence:*", Memory: true}}},
	} {
		got, err := ParseDurability(tc.spec)
		if err != nil {
			t.Errorf("ParseDurability(%q): %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseDurability(%q) = %+v; want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestParseDurabilityErrors(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want string // in the message, after the rule's number and text
	}{
		{"*", `rule 1 ("*"): no mode`},
		{"*=", `rule 1 ("*="): no mode after '='`},
		{"=durable", `rule 1 ("=durable"): no pattern`},
		{"a=durable; b=forever", `rule 2 ("b=forever"): unknown mode "forever"`},
		{"a=durable age=-1h", `rule 1 ("a=durable age=-1h"): age "-1h": want a positive duration`},
		{"a=durable age=10", `age "10"`},
		{"a=durable age=1h age=2h", "age given twice"},
		{"a=durable count=0", `count "0": want a positive whole number`},
		{"a=durable count=-3", `count "-3"`},
		{"a=durable count=1 count=2", "count given twice"},
		{"a=durable ttl=1h", `unknown option "ttl"`},
		{"a=durable 5", `option "5": want age=DURATION or count=N`},
		{"cursor:*=memory age=1h", `rule 1 ("cursor:*=memory age=1h"): a memory rule keeps nothing in the store, so it takes no age`},
		{"cursor:*=memory count=1", "so it takes no count"},
		{"a*b=durable", `rule 1 ("a*b=durable"): Durability pattern "a*b": '*' may only end a pattern`},
		{`"a` + "\x01" + `"=durable`, "not a valid topic name"},
		{`"unterminated=durable; b=memory`, "malformed quoted pattern"},
		{"a=durable; *=memory; a=memory", `rule 3 ("a=memory"): pattern "a" given twice`},
		{"a=durable;; b=durable;x", `rule 3 ("x"): no mode`},
	} {
		_, err := ParseDurability(tc.spec)
		if err == nil {
			t.Errorf("ParseDurability(%q) succeeded; want an error with %q", tc.spec, tc.want)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseDurability(%q) = %v; does not wrap ErrInvalidConfig", tc.spec, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDurability(%q) = %v; want it to say %q", tc.spec, err, tc.want)
		}
		if strings.Count(err.Error(), ErrInvalidConfig.Error()) != 1 {
			t.Errorf("ParseDurability(%q) = %v; the sentinel's text should appear once", tc.spec, err)
		}
	}
}

func TestFormatDurability(t *testing.T) {
	rules := []Durability{
		{Pattern: "notifications:*", MaxAge: 720 * time.Hour, MaxCount: 100000},
		{Pattern: "cursor:*", Memory: true},
		{Pattern: "room 1", MaxAge: 90 * time.Minute},
		{Pattern: "x", MaxAge: 1500 * time.Millisecond},
		{Pattern: "*"},
	}
	const want = `notifications:*=durable age=720h count=100000; cursor:*=memory; "room 1"=durable age=1h30m; x=durable age=1.5s; *=durable`
	if got := FormatDurability(rules); got != want {
		t.Fatalf("FormatDurability = %s\nwant %s", got, want)
	}
	back, err := ParseDurability(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rules) {
		t.Fatalf("parsed back %+v; want %+v", back, rules)
	}
	if got := FormatDurability(nil); got != "" {
		t.Fatalf("FormatDurability(nil) = %q", got)
	}
}

// TestParseDurabilityAcceptedByNew: what ParseDurability returns, New
// accepts.
func TestParseDurabilityAcceptedByNew(t *testing.T) {
	rules, err := ParseDurability("notifications:*=durable age=720h count=100000; cursor:*=memory; orders=durable; *=durable")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := newDurabilityRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"notifications:u1": "notifications:*",
		"cursor:doc":       "cursor:*",
		"orders":           "orders",
		"other":            "*",
	} {
		if r := rs.match(topic); r == nil || r.Pattern != want {
			t.Errorf("topic %q follows %+v; want pattern %q", topic, r, want)
		}
	}
	if rs.durable("cursor:doc") != nil {
		t.Error("cursor:doc is durable; want memory-only")
	}
}

// FuzzParseDurability: ParseDurability never panics, and what it accepts
// formats to a spec that parses back to the same rules and formats the
// same again.
func FuzzParseDurability(f *testing.F) {
	for _, s := range []string{
		"", "*=durable", "notifications:*=durable age=720h count=100000; cursor:*=memory; *=durable",
		`"room 1"=memory;"a;b=c\"d"=durable age=1s`, "a=durable age=1h30m0.5s count=18446744073709551615",
		"x = Memory ;", "a*b=durable", `"\u00a0"=durable`, "a=durable age=1h age=2h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		rules, err := ParseDurability(spec)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("ParseDurability(%q) = %v; does not wrap ErrInvalidConfig", spec, err)
			}
			return
		}
		if _, err := newDurabilityRules(rules); err != nil {
			t.Fatalf("ParseDurability(%q) accepted rules New refuses: %v", spec, err)
		}
		text := FormatDurability(rules)
		back, err := ParseDurability(text)
		if err != nil {
			t.Fatalf("ParseDurability(%q) = %+v, formatted as %q, which does not parse: %v", spec, rules, text, err)
		}
		if !reflect.DeepEqual(back, rules) {
			t.Fatalf("ParseDurability(%q) = %+v; formatted as %q it parses to %+v", spec, rules, text, back)
		}
		if again := FormatDurability(back); again != text {
			t.Fatalf("formatting is not stable: %q, then %q", text, again)
		}
	})
}
