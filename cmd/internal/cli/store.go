package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/postgres"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// Store kinds of --store.
const (
	// StoreSQLite is a SQLite file: --store sqlite:PATH, a plain path, or
	// the default.
	StoreSQLite = "sqlite"
	// StorePostgres is a PostgreSQL database: --store postgres://… or
	// postgresql://….
	StorePostgres = "postgres"
	// StoreMemory is no store at all: --store memory. Every topic lives in
	// memory only.
	StoreMemory = "memory"
)

// DefaultDurable is the default of --durable: every topic is kept in the
// store, for ever.
const DefaultDurable = "*=durable"

// defaultStoreHelp describes the default of --store in --help.
const defaultStoreHelp = "sqlite:$XDG_STATE_HOME/ringcast/ringcast.db, or without XDG_STATE_HOME sqlite:$HOME/.local/state/ringcast/ringcast.db"

// StoreSpec is a parsed --store value. The zero value is the default: a
// SQLite file at DefaultStorePath.
type StoreSpec struct {
	// Kind is StoreSQLite, StorePostgres or StoreMemory ("" reads as
	// StoreSQLite).
	Kind string
	// Path is the SQLite file; "" with StoreSQLite is the default path,
	// found when the store is opened.
	Path string
	// URL is the PostgreSQL connection URL, password included: show it
	// with RedactURL.
	URL string
}

// ParseStoreSpec reads a --store value: "memory"; "sqlite:PATH"; a URL
// whose scheme is postgres or postgresql; or else the path of a SQLite
// file. Its errors never repeat a URL, which may hold a password.
func ParseStoreSpec(s string) (StoreSpec, error) {
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	switch {
	case s == "":
		return StoreSpec{}, errors.New(`empty: give a file, sqlite:PATH, postgres://..., or "memory" for no store`)
	case lower == StoreMemory:
		return StoreSpec{Kind: StoreMemory}, nil
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return StoreSpec{Kind: StorePostgres, URL: s}, nil
	case strings.HasPrefix(lower, "sqlite:"):
		p := strings.TrimPrefix(s[len("sqlite:"):], "//")
		if p == "" {
			return StoreSpec{}, errors.New("sqlite: without a path")
		}
		return StoreSpec{Kind: StoreSQLite, Path: p}, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return StoreSpec{}, fmt.Errorf("unknown store scheme %q: want sqlite:PATH, postgres://..., postgresql://... or memory", scheme)
	}
	return StoreSpec{Kind: StoreSQLite, Path: s}, nil
}

// String shows the store without a password: "memory",
// "sqlite:/var/lib/ringcast.db", "postgres://ringcast:xxxxx@db:5432/ringcast",
// or "sqlite:(default)" for the default file not yet resolved.
func (s StoreSpec) String() string {
	switch s.Kind {
	case StoreMemory:
		return StoreMemory
	case StorePostgres:
		return RedactURL(s.URL)
	}
	if s.Path == "" {
		return "sqlite:(default)"
	}
	return "sqlite:" + s.Path
}

// RedactURL returns a connection URL with its password, in the user
// information or in a password query parameter, replaced by "xxxxx". A URL
// that does not parse is shown by its scheme alone.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		scheme, _, _ := strings.Cut(raw, "://")
		return scheme + "://(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// urlSecrets returns the passwords a URL holds, to scrub them from error
// messages that might quote them.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
	}
	for _, p := range u.Query()["password"] {
		if p != "" {
			out = append(out, p, url.QueryEscape(p))
		}
	}
	return out
}

// DefaultStorePath returns where the default SQLite store lives:
// $XDG_STATE_HOME/ringcast/ringcast.db when XDG_STATE_HOME is an absolute
// path, else $HOME/.local/state/ringcast/ringcast.db. Without either it
// fails with a message that says to give --store.
func DefaultStorePath(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if x := getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "ringcast", "ringcast.db"), nil
	}
	if h := getenv("HOME"); h != "" && filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "ringcast", "ringcast.db"), nil
	}
	return "", errors.New("no home directory (HOME and XDG_STATE_HOME are unset) to hold the default store: give --store PATH, --store postgres://..., or --store memory")
}

// storeValue is --store.
type storeValue struct{ p *StoreSpec }

func (v storeValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v storeValue) Set(s string) error {
	spec, err := ParseStoreSpec(s)
	if err != nil {
		return err
	}
	*v.p = spec
	return nil
}

// durabilityValue is --durable: pubsub.ParseDurability's syntax.
type durabilityValue struct{ p *[]pubsub.Durability }

func (v durabilityValue) String() string {
	if v.p == nil {
		return ""
	}
	return pubsub.FormatDurability(*v.p)
}

func (v durabilityValue) Set(s string) error {
	rules, err := pubsub.ParseDurability(s)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), pubsub.ErrInvalidConfig.Error()+": "))
	}
	*v.p = rules
	return nil
}

// openedStore is the store a process opened, and how to show it.
type openedStore struct {
	st   pubsub.Store
	desc string // as the logs show it: no password
	// loc is where it is: the absolute path of a SQLite file, or the
	// postgres:// URL (with its password: never log it).
	loc string
}

// openStore opens the store spec names, within the store timeout. A nil
// store (and no error) means memory-only. Its error is one line, names the
// store without a password, and says what to do.
func openStore(ctx context.Context, spec StoreSpec, getenv func(string) string, log *slog.Logger) (openedStore, error) {
	switch spec.Kind {
	case StoreMemory:
		return openedStore{desc: StoreMemory}, nil
	case StorePostgres:
		desc := RedactURL(spec.URL)
		if _, err := url.Parse(spec.URL); err != nil {
			return openedStore{}, fmt.Errorf("store %s: the URL does not parse; see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS", desc)
		}
		st, err := postgres.Open(ctx, spec.URL, postgres.Options{Logger: log})
		if err != nil {
			return openedStore{}, storeOpenError(desc, err, urlSecrets(spec.URL))
		}
		return openedStore{st: st, desc: desc, loc: spec.URL}, nil
	}
	path := spec.Path
	if path == "" {
		var err error
		if path, err = DefaultStorePath(getenv); err != nil {
			return openedStore{}, err
		}
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	desc := "sqlite:" + path
	st, err := sqlite.Open(ctx, path, sqlite.Options{Logger: log})
	if err != nil {
		return openedStore{}, storeOpenError(desc, err, nil)
	}
	return openedStore{st: st, desc: desc, loc: path}, nil
}

// storeOpenError is the one line a process ends with when its store did
// not open, with secrets scrubbed.
func storeOpenError(desc string, err error, secrets []string) error {
	msg := err.Error()
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	var text string
	switch {
	case errors.Is(err, store.ErrNotRingcast):
		text = fmt.Sprintf("store %s refused, left unchanged: %s (give --store another database, or --store memory)", desc, msg)
	case errors.Is(err, store.ErrUnavailable):
		text = fmt.Sprintf("store %s cannot be reached: %s", desc, msg)
	default:
		text = fmt.Sprintf("store %s: %s", desc, msg)
	}
	return &storeError{text: text, err: err}
}

// storeError is a store's error with the text a process shows: errors.Is
// still finds the store's sentinels in it.
type storeError struct {
	text string
	err  error
}

func (e *storeError) Error() string { return e.text }
func (e *storeError) Unwrap() error { return e.err }
