package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
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

// Failure detection presets for --failure-detection.
const (
	// FailureDetectionLAN keeps memberlist's LAN timings: a node that stops
	// without leaving is declared dead within a few seconds.
	FailureDetectionLAN = "lan"
	// FailureDetectionFast uses pubsub.FastGossip: a stopped node is declared
	// dead in well under a second, at the cost of more gossip traffic. For
	// loopback and LAN test clusters.
	FailureDetectionFast = "fast"
)

// detectionValue is a failure detection preset.
type detectionValue struct{ p *string }

func (v detectionValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v detectionValue) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if s != FailureDetectionLAN && s != FailureDetectionFast {
		return fmt.Errorf("unknown failure detection %q (want %s or %s)", s, FailureDetectionLAN, FailureDetectionFast)
	}
	*v.p = s
	return nil
}

// intValue is an integer in [min, max].
type intValue struct {
	p        *int
	min, max int
}

func (v intValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return errors.New("not an integer")
	}
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("out of range: want %d to %d", v.min, v.max)
	}
	*v.p = n
	return nil
}

// Byte size units accepted by sizeValue.
const (
	kib = 1 << 10
	mib = 1 << 20
)

// sizeValue is a number of bytes in [min, max], written as a plain number
// or with a KiB or MiB suffix ("65536", "64KiB", "1MiB").
type sizeValue struct {
	p        *int
	min, max int
}

func (v sizeValue) String() string {
	if v.p == nil {
		return ""
	}
	return formatSize(*v.p)
}

// formatSize writes n in the largest unit that divides it.
func formatSize(n int) string {
	switch {
	case n != 0 && n%mib == 0:
		return strconv.Itoa(n/mib) + "MiB"
	case n != 0 && n%kib == 0:
		return strconv.Itoa(n/kib) + "KiB"
	}
	return strconv.Itoa(n)
}

func (v sizeValue) Set(s string) error {
	num, unit := strings.TrimSpace(s), 1
	for _, u := range []struct {
		suffix string
		size   int
	}{{"kib", kib}, {"mib", mib}, {"b", 1}} {
		if strings.HasSuffix(strings.ToLower(num), u.suffix) {
			num, unit = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.size
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return errors.New("want a number of bytes such as 65536, 64KiB or 1MiB")
	}
	if err != nil || n < 0 || n > v.max/unit || n*unit < v.min {
		return fmt.Errorf("out of range: want %s to %s", formatSize(v.min), formatSize(v.max))
	}
	n *= unit
	*v.p = n
	return nil
}

// presenceValue is --presence: pubsub.ParsePresence's rules.
type presenceValue struct{ p *[]pubsub.PresenceRule }

func (v presenceValue) String() string {
	if v.p == nil {
		return ""
	}
	return pubsub.FormatPresence(*v.p)
}

func (v presenceValue) Set(s string) error {
	rules, err := pubsub.ParsePresence(s)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), pubsub.ErrInvalidConfig.Error()+": "))
	}
	*v.p = rules
	return nil
}
