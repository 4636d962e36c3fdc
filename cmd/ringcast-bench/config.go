package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// DefaultURL is the gateway a local ringcast-ws serves by default.
const DefaultURL = "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"

// Bounds of a Config.
const (
	MaxConns       = 100000
	MaxRate        = 1e6
	MaxDuration    = 24 * time.Hour
	MaxPayloadSize = 1 << 20
	MinPayloadSize = 64
	// maxInFlight bounds one publisher's publishes awaiting their reply;
	// past it the publisher waits (and falls behind its schedule).
	maxInFlight = 1000
)

var (
	errRemote = errors.New("not a loopback address (use -allow-remote to load a remote cluster)")
	errConfig = errors.New("invalid configuration")
)

// Config describes one load run. The zero value is not valid: use
// parseFlags or fill every field, then validate.
type Config struct {
	URLs        []string      // gateways; connection i goes to URLs[i%len(URLs)]
	Conns       int           // connections
	Topics      int           // topics; connection i joins topic i%Topics
	Publishers  int           // connections that publish; 0 means Topics
	Rate        float64       // publishes per second, all publishers together
	Duration    time.Duration // how long to publish
	PayloadSize int           // bytes of each published JSON object
	Drain       time.Duration // wait for the last messages after publishing
	Timeout     time.Duration // each dial, join, and publish reply
	TopicPrefix string        // topic i is TopicPrefix + i
	AllowRemote bool          // allow gateways not on a loopback address
	Quiet       bool          // no progress line
}

// validate checks the bounds, fills Publishers, and refuses non-loopback
// targets unless AllowRemote is set.
func (c *Config) validate() error {
	switch {
	case len(c.URLs) == 0:
		return fmt.Errorf("%w: no gateway URL", errConfig)
	case c.Conns < 1 || c.Conns > MaxConns:
		return fmt.Errorf("%w: -conns %d is not in 1..%d", errConfig, c.Conns, MaxConns)
	case c.Topics < 1 || c.Topics > c.Conns:
		return fmt.Errorf("%w: -topics %d is not in 1..conns (%d)", errConfig, c.Topics, c.Conns)
	case c.Publishers < 0 || c.Publishers > c.Conns:
		return fmt.Errorf("%w: -publishers %d is not in 0..conns (%d)", errConfig, c.Publishers, c.Conns)
	case !(c.Rate >= 0 && c.Rate <= MaxRate):
		return fmt.Errorf("%w: -rate %v is not in 0..%v", errConfig, c.Rate, MaxRate)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("%w: -duration %v is not in (0, %v]", errConfig, c.Duration, MaxDuration)
	case c.PayloadSize < MinPayloadSize || c.PayloadSize > MaxPayloadSize:
		return fmt.Errorf("%w: -payload %d is not in %d..%d", errConfig, c.PayloadSize, MinPayloadSize, MaxPayloadSize)
	case c.Drain < 0 || c.Drain > time.Hour:
		return fmt.Errorf("%w: -drain %v is not in 0..1h", errConfig, c.Drain)
	case c.Timeout <= 0 || c.Timeout > time.Hour:
		return fmt.Errorf("%w: -timeout %v is not in (0, 1h]", errConfig, c.Timeout)
	}
	if c.Publishers == 0 {
		c.Publishers = c.Topics
	}
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%w: %q: %v", errConfig, raw, err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return fmt.Errorf("%w: %q: scheme must be ws or wss", errConfig, raw)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%w: %q: no host", errConfig, raw)
		}
		if !c.AllowRemote && !isLoopback(u.Hostname()) {
			return fmt.Errorf("%q: %w", raw, errRemote)
		}
	}
	return nil
}

// isLoopback reports whether host is a loopback IP address or a name that
// resolves only to loopback addresses.
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if host == "localhost" {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}
