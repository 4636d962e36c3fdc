package access

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNamespace(t *testing.T) {
	for topic, want := range map[string]string{
		"admin:billing": "admin", "admin:a:b": "admin", "lobby": "", ":x": "", "orders:": "orders",
	} {
		if got := Namespace(topic); got != want {
			t.Errorf("Namespace(%q) = %q, want %q", topic, got, want)
		}
	}
}

// TestExampleConfig: the commented example file parses into the rules it
// describes.
func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "..", "..", "examples", "ringcast.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]Rules{
		"lobby":             Open,
		"topics:matrix":     Open,
		"admin:billing":     {Subscribe: SubscribeClaim, Publish: PublishAPI, History: false, Anonymous: false},
		"rooms:42":          {Subscribe: SubscribeAnyone, Publish: PublishAuthenticated, History: true, Anonymous: true},
		"orders:1234":       {Subscribe: SubscribeClaim, Publish: PublishAPI, History: true, Anonymous: false},
		"notifications:dep": {Subscribe: SubscribeAnyone, Publish: PublishCreator, History: true, Anonymous: true},
	} {
		if _, got := cfg.Rules(topic); got != want {
			t.Errorf("%s: %+v, want %+v", topic, got, want)
		}
	}
}

// TestConfigDefaults: a namespace's missing keys come from [default],
// [default]'s from Open; without a config every topic is Open.
func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("c.toml", []byte(`
[default]
anonymous = false
history = false

[namespaces.rooms]
publish = "authenticated"
history = true
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, r := cfg.Rules("lobby"); r != (Rules{Subscribe: SubscribeAnyone, Publish: PublishClients}) {
		t.Errorf("default: %+v", r)
	}
	if ns, r := cfg.Rules("rooms:1"); ns != "rooms" || r != (Rules{Publish: PublishAuthenticated, History: true}) {
		t.Errorf("rooms: %q %+v", ns, r)
	}
	if _, r := (*Config)(nil).Rules("admin:billing"); r != Open {
		t.Errorf("nil config: %+v", r)
	}
	empty, err := ParseConfig("empty.toml", []byte("# nothing\n"))
	if err != nil || empty.Default != Open || len(empty.Namespaces) != 0 {
		t.Errorf("empty file: %+v %v", empty, err)
	}
	// Inline tables and dotted keys say the same.
	dotted, err := ParseConfig("d.toml", []byte("default = { anonymous = false, history = false }\nnamespaces.rooms.publish = \"authenticated\"\nnamespaces.rooms.history = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !dotted.Equal(cfg) {
		t.Errorf("dotted keys: %+v, want %+v", dotted, cfg)
	}
}

// TestConfigErrors: every error names the file and the line, and says
// what is wrong and what is wanted.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[default]\n\n\n\n\n\n\n\n\n\n\n[namespaces.admin]\npublish = \"everyone\"\n",
			`ringcast.toml:13: namespace "admin": publish: unknown value "everyone" (want clients, authenticated, claim, creator or api)`},
		{"[namespaces.admin]\nsubscribe = \"claim\"\npublish = \"everyone\"\n",
			`ringcast.toml:3: namespace "admin": publish: unknown value "everyone"`},
		{"[default]\nsubscribe = \"all\"\n", `ringcast.toml:2: default: subscribe: unknown value "all" (want anyone, authenticated or claim)`},
		{"[namespaces.admin]\npublsh = \"api\"\n", `ringcast.toml:2: namespace "admin": unknown key "publsh" (want subscribe, publish, history or anonymous)`},
		{"[namespaces.admin]\nhistory = \"yes\"\n", `ringcast.toml:2: namespace "admin": history: want true or false, not the string "yes"`},
		{"[namespaces.admin]\nanonymous = 0\n", `ringcast.toml:2: namespace "admin": anonymous: want true or false, not the number 0`},
		{"[namespaces.admin]\npublish = [\"api\"]\n", `ringcast.toml:2: namespace "admin": publish: want a string (clients, authenticated, claim, creator or api), not an array`},
		{"[namespaces.admin]\nhistory = tru\n", `ringcast.toml:2: TOML: `},
		{"[namespaces.admin]\nhistory = true\nhistory = false\n", `ringcast.toml:3: TOML: `},
		{"[namespaces.admin]\n[namespaces.admin]\n", `ringcast.toml:2: TOML: `},
		{"\nfoo = 1\n", `ringcast.toml:2: unknown key "foo" (want default or namespaces)`},
		{"default = 3\n", `ringcast.toml:1: default: want a table of rules ([default])`},
		{"[default.x]\n", `ringcast.toml:1: default: unknown key "x"`},
		{"[[namespaces]]\n", `ringcast.toml:1: namespaces: want tables of rules`},
		{"namespaces.admin = 1\n", `ringcast.toml:1: namespace "admin": want a table of rules ([namespaces.admin])`},
		{"[namespaces.admin.sub]\n", `ringcast.toml:1: namespace "admin": unknown key "sub"`},
		{"[namespaces.\"a:b\"]\n", `ringcast.toml:1: namespace "a:b": a name holds neither ":" nor "*"`},
		{"[namespaces.\"\"]\n", `ringcast.toml:1: namespace "": empty name`},
		{"[namespaces.orders]\npublish = \"creator\"\n", `ringcast.toml:2: namespace "orders": publish: "creator" applies to the namespace "notifications" only`},
		{"[default]\npublish = \"creator\"\n", `ringcast.toml:2: default: publish: "creator" applies to the namespace "notifications" only`},
		{"[x]\n\xff = 1\n", `ringcast.toml:2: not valid UTF-8`},
	} {
		_, err := ParseConfig("ringcast.toml", []byte(tc.in))
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, MaxConfigSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("large file: %v", err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[default]\nhistory = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: default: history:") {
		t.Errorf("bad file: %v", err)
	}
}
