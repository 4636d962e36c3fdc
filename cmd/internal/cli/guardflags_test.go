package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100":       {100, 200},
		"100:5":     {100, 5},
		"100/s:300": {100, 300},
		" 0.5 ":     {0.5, 1},
		"off":       {},
		"0":         {},
		"1e9":       {1e9, maxBurst},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v, want %+v", in, got, err, want)
		}
		if err == nil {
			if back, err := ParseRate(got.String()); err != nil || back != got {
				t.Errorf("ParseRate(%q.String() = %q) = %+v, %v", in, got.String(), back, err)
			}
		}
	}
	for _, in := range []string{"", "-1", "abc", "NaN", "Inf", "1e10", "100:0", "100:-3", "100:x", "100:1.5", "1:2:3", "100/m"} {
		if r, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", in, r)
		}
	}
}

// FuzzParseRate: a rate flag either fails or reads back as itself, within
// the bounds.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100", "100:200", "0.5:1", "off", "0", "1e9", "100/s:3", ":", "1:", "NaN:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Off() {
			if r != (Rate{}) {
				t.Fatalf("%q: off with %+v", s, r)
			}
			return
		}
		if r.Rate <= 0 || r.Rate > maxRate || r.Burst < 1 || r.Burst > maxBurst {
			t.Fatalf("%q: out of bounds %+v", s, r)
		}
		if back, err := ParseRate(r.String()); err != nil || back != r {
			t.Fatalf("%q: %+v reads back as %+v, %v", s, r, back, err)
		}
	})
}

func TestGuardFlags(t *testing.T) {
	c := NewCommand("ringcast-test", "")
	gf := c.DeclareGuard(true)
	err := c.Parse([]string{"--allowed-origins", "app.example.com", "--allowed-hosts", "ws.example.com",
		"--client-publish-rate", "10:20", "--client-join-rate", "off", "--max-conns-per-addr", "0", "--api-rate", "5"},
		env(map[string]string{"RINGCAST_ORIGINS": "old.example.com,app.example.com", "RINGCAST_PROTECTED_MODE": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := gf.Origins(); !slices.Equal(got, []string{"app.example.com", "old.example.com"}) {
		t.Fatalf("origins %v", got)
	}
	if got := gf.Hosts("gw.example.com:4000"); !slices.Equal(got, []string{"ws.example.com", "gw.example.com"}) {
		t.Fatalf("hosts %v", got)
	}
	if got := gf.Hosts("0.0.0.0:4000"); !slices.Equal(got, []string{"ws.example.com"}) {
		t.Fatalf("hosts %v", got)
	}
	if c.Common.ProtectedMode {
		t.Fatal("RINGCAST_PROTECTED_MODE=false ignored")
	}
	var o gateway.Options
	gf.GatewayOptions(&o, "127.0.0.1:4000")
	if o.PublishRate != 10 || o.PublishBurst != 20 || o.JoinRate != -1 || o.MaxConnsPerAddr != -1 ||
		o.UserPublishRate != gateway.DefaultUserPublishRate || !slices.Equal(o.OriginPatterns, []string{"app.example.com", "old.example.com"}) {
		t.Fatalf("gateway options %+v", o)
	}
	g := gf.Guard(nil, "127.0.0.1:4000", true, false, 1<<20, nil)
	if g.cfg.APIRate != 5 || g.cfg.APIBurst != 10 || !g.cfg.ProtectedMode || g.cfg.MaxBodyBytes != 1<<20+maxBodySlack {
		t.Fatalf("guard config %+v", g.cfg)
	}

	// Defaults.
	c = NewCommand("ringcast-test", "")
	gf = c.DeclareGuard(true)
	if err := c.Parse(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	if !c.Common.ProtectedMode || gf.MaxConnsPerAddr != gateway.DefaultMaxConnsPerAddr || gf.APIRate != (Rate{DefaultAPIRate, DefaultAPIBurst}) {
		t.Fatalf("defaults %+v %+v", c.Common, gf)
	}

	// Bad values.
	for _, args := range [][]string{
		{"--allowed-hosts", "https://ws.example.com"},
		{"--allowed-origins", "a b"},
		{"--origins", "x["},
		{"--client-publish-rate", "fast"},
		{"--max-conns-per-addr", "-1"},
		{"--protected-mode=maybe"},
	} {
		c := NewCommand("ringcast-test", "")
		c.DeclareGuard(true)
		if err := c.Parse(args, env(nil)); err == nil {
			t.Errorf("Parse(%v) accepted", args)
		}
	}
	// ringcast-topic has no WebSocket flags.
	c = NewCommand("ringcast-test", "")
	c.DeclareGuard(false)
	if err := c.Parse([]string{"--origins", "x"}, env(nil)); err == nil || !strings.Contains(err.Error(), "origins") {
		t.Fatalf("--origins without a gateway: %v", err)
	}
}
