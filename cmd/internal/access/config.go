package access

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Subscribe says who may join a namespace's topics.
type Subscribe uint8

// The subscribe rules.
const (
	// SubscribeAnyone lets every connection the namespace admits join
	// (anonymous ones too when Rules.Anonymous allows them).
	SubscribeAnyone Subscribe = iota
	// SubscribeAuthenticated needs a connection with a token.
	SubscribeAuthenticated
	// SubscribeClaim needs a JWT whose channels claim grants the topic.
	SubscribeClaim
)

var subscribeNames = []string{"anyone", "authenticated", "claim"}

// String returns the rule's name in the config file.
func (s Subscribe) String() string {
	if int(s) < len(subscribeNames) {
		return subscribeNames[s]
	}
	return "Subscribe(" + strconv.Itoa(int(s)) + ")"
}

// Publish says who may publish to a namespace's topics.
type Publish uint8

// The publish rules.
const (
	// PublishClients lets every connection allowed to subscribe publish.
	PublishClients Publish = iota
	// PublishAuthenticated needs a connection with a token.
	PublishAuthenticated
	// PublishClaim needs a JWT whose channels claim grants the topic.
	PublishClaim
	// PublishCreator leaves publishing to the topic's creator through the
	// notification system's API (POST /api/topics/NAME/notifications): no
	// client and no POST /api/publish. Only the namespace NotifyNamespace
	// takes it.
	PublishCreator
	// PublishAPI leaves publishing to POST /api/publish with an API key:
	// clients never publish.
	PublishAPI
)

var publishNames = []string{"clients", "authenticated", "claim", "creator", "api"}

// String returns the rule's name in the config file.
func (p Publish) String() string {
	if int(p) < len(publishNames) {
		return publishNames[p]
	}
	return "Publish(" + strconv.Itoa(int(p)) + ")"
}

// NotifyNamespace is the namespace of the notification system's topics,
// the only one whose publish rule may be "creator".
const NotifyNamespace = "notifications"

// MaxNamespaceLen bounds a namespace's name, in bytes.
const MaxNamespaceLen = 128

// MaxConfigSize bounds a config file, in bytes.
const MaxConfigSize = 1 << 20

// Rules are the permissions of one namespace.
type Rules struct {
	Subscribe Subscribe
	Publish   Publish
	// History allows joins that resume from a position (since): reading
	// the topic's history.
	History bool
	// Anonymous admits connections without a token to the namespace at
	// all; without it they can neither join nor publish.
	Anonymous bool
}

// Open are the rules of every topic without a config file: anyone
// subscribes, subscribers publish, history is readable and anonymous
// connections are admitted.
var Open = Rules{Subscribe: SubscribeAnyone, Publish: PublishClients, History: true, Anonymous: true}

// Config is a parsed config file: the rules of the namespaces it lists,
// and the default rules of every other topic. A Config is not changed
// after ParseConfig returns it and may be read concurrently.
type Config struct {
	// Default applies to topics without ":" and to namespaces not listed.
	Default Rules
	// Namespaces maps a namespace (the prefix of a topic before its first
	// ":") to its rules.
	Namespaces map[string]Rules
}

// Namespace returns topic's namespace: the prefix before its first ":",
// or "" for a topic without one (the default namespace).
func Namespace(topic string) string {
	ns, _, ok := strings.Cut(topic, ":")
	if !ok {
		return ""
	}
	return ns
}

// Rules returns the namespace of topic and the rules that apply to it. A
// nil Config applies Open to every topic.
func (c *Config) Rules(topic string) (namespace string, r Rules) {
	ns := Namespace(topic)
	if c == nil {
		return ns, Open
	}
	if r, ok := c.Namespaces[ns]; ok && ns != "" {
		return ns, r
	}
	return ns, c.Default
}

// Equal reports whether c and o hold the same rules.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Default != o.Default || len(c.Namespaces) != len(o.Namespaces) {
		return false
	}
	for ns, r := range c.Namespaces {
		if or, ok := o.Namespaces[ns]; !ok || or != r {
			return false
		}
	}
	return true
}

// LoadConfig reads and parses the config file at path (see ParseConfig).
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("config: %s is not a regular file", path)
	}
	if st.Size() > MaxConfigSize {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, MaxConfigSize)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return ParseConfig(path, data)
}

// ConfigError is an error in a config file, at a line.
type ConfigError struct {
	File string
	Line int // 1-based; 0 when the error has no line
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// ParseConfig parses a config file's contents; name is the file's name in
// the errors. Every error is a *ConfigError that names the file and the
// line, and the first one in the file is returned. The format is in the
// package documentation.
func ParseConfig(name string, data []byte) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, &ConfigError{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxConfigSize)}
	}
	if !utf8.Valid(data) {
		return nil, &ConfigError{File: name, Line: invalidUTF8Line(data), Msg: "not valid UTF-8"}
	}
	// The TOML syntax, duplicate keys and tables defined twice: the
	// decoder checks them all and places its errors.
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			return nil, &ConfigError{File: name, Line: line, Msg: "TOML: " + strings.TrimPrefix(de.Error(), "toml: ")}
		}
		return nil, &ConfigError{File: name, Msg: "TOML: " + err.Error()}
	}
	entries, err := flatten(data)
	if err != nil { // the decoder accepted it: not expected
		return nil, &ConfigError{File: name, Msg: "TOML: " + err.Error()}
	}
	b := builder{file: name, defaults: map[string]int{}, ns: map[string]*partial{}}
	for _, e := range entries {
		if err := b.add(e); err != nil {
			return nil, err
		}
	}
	return b.build()
}

// invalidUTF8Line returns the line of data's first invalid UTF-8 byte.
func invalidUTF8Line(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		data = data[n:]
	}
	return line
}

// entry is one key of the document: a table or a key/value pair, with
// its full path and line. (The parser reuses its nodes from one
// expression to the next: an entry holds copies.)
type entry struct {
	path  []string
	table bool          // a table header or an inline table
	kind  unstable.Kind // the value's, or ArrayTable for [[path]]
	data  string        // a scalar value's
	line  int
}

// describe names e's value for an error.
func (e entry) describe() string {
	switch e.kind {
	case unstable.String:
		return fmt.Sprintf("the string %q", truncate(e.data))
	case unstable.Bool:
		return "a boolean"
	case unstable.Integer, unstable.Float:
		return "the number " + truncate(e.data)
	case unstable.Array:
		return "an array"
	case unstable.InlineTable, unstable.Table, unstable.ArrayTable:
		return "a table"
	}
	return "a date or time"
}

// flatten lists the document's tables and keys in document order, inline
// tables opened into their keys.
func flatten(data []byte) ([]entry, error) {
	var p unstable.Parser
	p.Reset(data)
	var out []entry
	var table []string
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			path, line := keyPath(&p, nil, n.Key())
			table = path
			out = append(out, entry{path: path, table: true, kind: n.Kind, line: line})
		case unstable.KeyValue:
			out = appendKeyValue(&p, out, table, n)
		}
	}
	return out, p.Error()
}

// appendKeyValue adds a key/value pair under prefix, and the keys of an
// inline table value.
func appendKeyValue(p *unstable.Parser, out []entry, prefix []string, n *unstable.Node) []entry {
	path, line := keyPath(p, prefix, n.Key())
	v := n.Value()
	if v.Kind != unstable.InlineTable {
		return append(out, entry{path: path, kind: v.Kind, data: string(v.Data), line: line})
	}
	out = append(out, entry{path: path, table: true, kind: v.Kind, line: line})
	it := v.Children()
	for it.Next() {
		if c := it.Node(); c.Kind == unstable.KeyValue {
			out = appendKeyValue(p, out, path, c)
		}
	}
	return out
}

// keyPath returns prefix followed by a dotted key's parts, and the line of
// its last part.
func keyPath(p *unstable.Parser, prefix []string, it unstable.Iterator) ([]string, int) {
	path := slices.Clone(prefix)
	line := 0
	for it.Next() {
		k := it.Node()
		path = append(path, string(k.Data))
		line = p.Shape(k.Raw).Start.Line
	}
	return path, line
}

// Keys of a rules table.
const (
	keySubscribe = "subscribe"
	keyPublish   = "publish"
	keyHistory   = "history"
	keyAnonymous = "anonymous"
)

// partial is a namespace's rules as read so far: the keys given, and
// where.
type partial struct {
	line int            // the table's first line
	keys map[string]int // key → line
	r    Rules
}

// builder turns the document's entries into a Config.
type builder struct {
	file     string
	def      Rules
	defaults map[string]int // keys given in [default] → line
	defLine  int
	ns       map[string]*partial
	order    []string
}

func (b *builder) errorf(line int, format string, args ...any) error {
	return &ConfigError{File: b.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (b *builder) add(e entry) error {
	switch e.path[0] {
	case "default":
		if len(e.path) == 1 {
			if !e.table || e.kind == unstable.ArrayTable {
				return b.errorf(e.line, "default: want a table of rules ([default])")
			}
			b.defLine = e.line
			return nil
		}
		if len(e.path) > 2 {
			return b.errorf(e.line, "default: unknown key %q (want subscribe, publish, history or anonymous)", strings.Join(e.path[1:], "."))
		}
		b.defaults[e.path[1]] = e.line
		return b.rule(&b.def, "default", e.path[1], e)
	case "namespaces":
		if len(e.path) == 1 {
			if !e.table || e.kind == unstable.ArrayTable {
				return b.errorf(e.line, "namespaces: want tables of rules ([namespaces.NAME])")
			}
			return nil
		}
		name := e.path[1]
		where := fmt.Sprintf("namespace %q", name)
		p, ok := b.ns[name]
		if !ok {
			if err := validNamespace(name); err != nil {
				return b.errorf(e.line, "%s: %v", where, err)
			}
			p = &partial{line: e.line, keys: map[string]int{}}
			b.ns[name] = p
			b.order = append(b.order, name)
		}
		if len(e.path) == 2 {
			if !e.table || e.kind == unstable.ArrayTable {
				return b.errorf(e.line, "%s: want a table of rules ([namespaces.%s])", where, quoteKey(name))
			}
			return nil
		}
		if len(e.path) > 3 {
			return b.errorf(e.line, "%s: unknown key %q (want subscribe, publish, history or anonymous)", where, strings.Join(e.path[2:], "."))
		}
		p.keys[e.path[2]] = e.line
		return b.rule(&p.r, where, e.path[2], e)
	}
	return b.errorf(e.line, "unknown key %q (want default or namespaces)", e.path[0])
}

// rule sets one key of a rules table.
func (b *builder) rule(r *Rules, where, key string, e entry) error {
	switch key {
	case keySubscribe, keyPublish, keyHistory, keyAnonymous:
	default:
		return b.errorf(e.line, "%s: unknown key %q (want subscribe, publish, history or anonymous)", where, key)
	}
	if e.table {
		return b.errorf(e.line, "%s: %s: want a value, not a table", where, key)
	}
	switch key {
	case keySubscribe:
		s, err := b.enum(where, key, e, subscribeNames)
		r.Subscribe = Subscribe(s)
		return err
	case keyPublish:
		s, err := b.enum(where, key, e, publishNames)
		r.Publish = Publish(s)
		return err
	}
	if e.kind != unstable.Bool {
		return b.errorf(e.line, "%s: %s: want true or false, not %s", where, key, e.describe())
	}
	if key == keyHistory {
		r.History = e.data == "true"
	} else {
		r.Anonymous = e.data == "true"
	}
	return nil
}

// enum reads a string that must be one of names.
func (b *builder) enum(where, key string, e entry, names []string) (int, error) {
	if e.kind != unstable.String {
		return 0, b.errorf(e.line, "%s: %s: want a string (%s), not %s", where, key, orList(names), e.describe())
	}
	if i := slices.Index(names, e.data); i >= 0 {
		return i, nil
	}
	return 0, b.errorf(e.line, "%s: %s: unknown value %q (want %s)", where, key, truncate(e.data), orList(names))
}

// build fills the keys a table left out and checks what spans keys.
func (b *builder) build() (*Config, error) {
	def := Open
	for key := range b.defaults {
		setKey(&def, &b.def, key)
	}
	if def.Publish == PublishCreator {
		return nil, b.errorf(b.defaults[keyPublish], "default: publish: %q applies to the namespace %q only (other topics have no creator): use api, authenticated, claim or clients", "creator", NotifyNamespace)
	}
	cfg := &Config{Default: def, Namespaces: make(map[string]Rules, len(b.ns))}
	for _, name := range b.order {
		p := b.ns[name]
		r := def
		for key := range p.keys {
			setKey(&r, &p.r, key)
		}
		where := fmt.Sprintf("namespace %q", name)
		if r.Publish == PublishCreator && name != NotifyNamespace {
			line := p.keys[keyPublish]
			if line == 0 {
				line = p.line
			}
			return nil, b.errorf(line, "%s: publish: %q applies to the namespace %q only (topics elsewhere have no creator): use api, authenticated, claim or clients", where, "creator", NotifyNamespace)
		}
		cfg.Namespaces[name] = r
	}
	return cfg, nil
}

// setKey copies key's rule from src to dst.
func setKey(dst, src *Rules, key string) {
	switch key {
	case keySubscribe:
		dst.Subscribe = src.Subscribe
	case keyPublish:
		dst.Publish = src.Publish
	case keyHistory:
		dst.History = src.History
	case keyAnonymous:
		dst.Anonymous = src.Anonymous
	}
}

// validNamespace checks a namespace's name: what may precede a topic's
// first ":".
func validNamespace(name string) error {
	switch {
	case name == "":
		return errors.New("empty name (topics without \":\" follow [default])")
	case len(name) > MaxNamespaceLen:
		return fmt.Errorf("name longer than %d bytes", MaxNamespaceLen)
	case strings.ContainsAny(name, ":*"):
		return errors.New(`a name holds neither ":" nor "*" (a namespace is the part of a topic before its first ":")`)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r < 0xa0) {
			return errors.New("control character in the name")
		}
	}
	return nil
}

// truncate bounds a value quoted in an error.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// quoteKey writes a TOML key, quoted when it is not bare.
func quoteKey(k string) string {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return strconv.Quote(k)
		}
	}
	return k
}
