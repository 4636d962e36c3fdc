package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// The flag.Value types below check their input in Set, so that a bad value
// is reported while parsing, with the flag's or the variable's name.

// stringValue is a plain string.
type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

// addrValue is a "host:port" address; host may be empty (all interfaces)
// and port 0 lets the system choose.
type addrValue struct {
	p        *string
	optional bool // "" is allowed and means off
}

func (v addrValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v addrValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" && v.optional {
		*v.p = ""
		return nil
	}
	if err := checkAddr(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func checkAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// listValue is a comma-separated list; blank entries are dropped. check,
// when set, validates each entry.
type listValue struct {
	p     *[]string
	check func(string) error
}

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v listValue) Set(s string) error {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if v.check != nil {
			if err := v.check(item); err != nil {
				return err
			}
		}
		if !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	*v.p = out
	return nil
}

// checkRole accepts the roles a node can take.
func checkRole(r string) error {
	switch r {
	case pubsub.RoleGateway, pubsub.RoleTopics:
		return nil
	}
	return fmt.Errorf("unknown role %q (roles are %s and %s)", r, pubsub.RoleGateway, pubsub.RoleTopics)
}

// rolesValue is a non-empty list of known roles.
type rolesValue struct{ listValue }

func (v rolesValue) Set(s string) error {
	var roles []string
	if err := (listValue{p: &roles, check: checkRole}).Set(s); err != nil {
		return err
	}
	if len(roles) == 0 {
		return errors.New("at least one role is needed")
	}
	*v.p = roles
	return nil
}

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// formatValue is a log format.
type formatValue struct{ p *string }

func (v formatValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v formatValue) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if s != LogText && s != LogJSON {
		return fmt.Errorf("unknown log format %q (want %s or %s)", s, LogText, LogJSON)
	}
	*v.p = s
	return nil
}

// levelValue is a slog level: debug, info, warn, error (or e.g. "info+2").
type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

func (v levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	*v.p = l
	return nil
}

// durationValue is a positive duration.
type durationValue struct{ p *time.Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a duration such as 10s: %w", err)
	}
	if d <= 0 {
		return fmt.Errorf("duration %v is not positive", d)
	}
	*v.p = d
	return nil
}
