package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// Browser safety: which Host a request may name, and which pages (Origin)
// may open a connection. A page of a DNS-rebinding attack runs in the
// browser under the attacker's name (evil.example), which the attacker
// then points at the gateway's address: the browser sends
// "Host: evil.example" and "Origin: http://evil.example", which a
// same-origin check alone accepts. The Host check refuses it first.

// ErrHostPattern is returned by ValidateHostPattern for a pattern that is
// not a host name pattern.
var ErrHostPattern = errors.New("gateway: invalid host pattern")

// maxHostPatternLen bounds a host pattern: a DNS name is at most 253 bytes,
// and a port adds 6.
const maxHostPatternLen = 260

// ValidateHostPattern checks a pattern of Options.AllowedHosts or
// Options.OriginPatterns: a host name, an IP address or a path.Match
// pattern of them ("*.example.com"), optionally with a port
// ("app.example.com:8443"), of at most 260 bytes and without a scheme,
// path, space or control character. "*" is valid and matches every host.
func ValidateHostPattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty", ErrHostPattern)
	case len(p) > maxHostPatternLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrHostPattern, maxHostPatternLen)
	case strings.Contains(p, "://"):
		return fmt.Errorf("%w %q: a host pattern has no scheme (write app.example.com, not https://app.example.com)", ErrHostPattern, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == 0x7f || c == '/' || c == '\\' || c == '@' || c == '?' || c == '#' || c == ',' {
			return fmt.Errorf("%w %q: byte %q is not allowed", ErrHostPattern, p, c)
		}
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%w %q: %v", ErrHostPattern, p, err)
	}
	return nil
}

// HostAllowed reports whether a request naming host (the Host header,
// "name" or "name:port") may be served, given the patterns allowed
// (Options.AllowedHosts): always for an IP address (an attacker's page
// cannot make the browser send one that the attacker's name resolved to),
// "localhost" and names under ".localhost" (which browsers resolve to
// loopback themselves), and otherwise when a pattern matches the host,
// with or without its port, case-insensitively. The pattern "*" allows
// every host. An empty or malformed host is refused.
func HostAllowed(patterns []string, host string) bool {
	name, ok := hostName(host)
	if !ok {
		return false
	}
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")); err == nil {
		return true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	return matchHost(patterns, strings.ToLower(host), name)
}

// hostName returns the lower-case host of "host" or "host:port", without
// the port and a trailing dot, or false if it is empty or malformed.
func hostName(host string) (string, bool) {
	if host == "" || len(host) > maxHostPatternLen {
		return "", false
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		name = host[1 : len(host)-1]
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == 0x7f || c == '/' || c == '\\' || c == '@' {
			return "", false
		}
	}
	return name, true
}

// matchHost reports whether a pattern matches hostport or name.
func matchHost(patterns []string, hostport, name string) bool {
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		p = strings.ToLower(p)
		if ok, _ := path.Match(p, name); ok {
			return true
		}
		if ok, _ := path.Match(p, hostport); ok {
			return true
		}
	}
	return false
}

// OriginAllowed reports whether a request from a page of origin (the
// Origin header) may be served by a server reached under host (the Host
// header, already checked with HostAllowed): when the request has no
// Origin (not a browser), when the origin's host is host (same origin), or
// when a pattern matches the origin's host, with or without its port. The
// origin "null" (a sandboxed or privacy-sensitive context) is refused.
func OriginAllowed(patterns []string, origin, host string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	name, ok := hostName(u.Host)
	if !ok {
		return false
	}
	return matchHost(patterns, strings.ToLower(u.Host), name)
}

// validPatterns returns the patterns that ValidateHostPattern accepts,
// and warns about the others.
func validPatterns(ps []string, what string, warn func(msg string, args ...any)) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if err := ValidateHostPattern(p); err != nil {
			warn("gateway: dropping invalid "+what+" pattern", "pattern", p, "err", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// clientIP returns the IP of a RemoteAddr ("ip:port"), or the whole of it
// when it has no port.
func clientIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
