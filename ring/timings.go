package ring

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// Timings tune failure detection, gossip, joining and healing. Zero fields
// take memberlist's LAN defaults for failure detection and gossip (probe
// every 1 s with a 500 ms timeout, 3 indirect probes, gossip every 200 ms,
// push/pull every 30 s, TCP timeout 10 s, suspicion multiplier 4, maximum
// suspicion timeout 6 times the minimum, awareness multiplier 8) and the
// defaults named on each field for joining and healing. ProbeTimeout must be
// shorter than ProbeInterval and JoinRetryMin no longer than JoinRetryMax.
// See FastTimings.
type Timings struct {
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	TCPTimeout       time.Duration
	SuspicionMult    int

	// SuspicionMaxTimeoutMult bounds how long a suspected member may take
	// to refute the suspicion when no other member confirms it, as a
	// multiple of the minimum suspicion timeout.
	SuspicionMaxTimeoutMult int
	// AwarenessMaxMultiplier bounds how far a node that misses its own
	// probes' acknowledgements (because it is the one that is slow) stretches
	// its probe interval and timeout before declaring others suspect.
	AwarenessMaxMultiplier int
	// IndirectChecks is the number of members asked to probe a member that
	// did not answer a direct probe.
	IndirectChecks int

	// JoinRetryMin and JoinRetryMax bound the wait between two attempts to
	// join the seeds: it starts at JoinRetryMin and doubles after every
	// failed attempt up to JoinRetryMax, with up to 20% of random jitter.
	// Defaults DefaultJoinRetryMin and DefaultJoinRetryMax.
	JoinRetryMin time.Duration
	JoinRetryMax time.Duration

	// ReconnectInterval is how often a node tries to rejoin the seeds that
	// are not alive members and the members it has lost to failure. A
	// failed member is retried with a wait that doubles from
	// ReconnectInterval up to four times that. Default
	// DefaultReconnectInterval; negative turns healing off.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a member that failed is retried before
	// it is forgotten. Default DefaultReconnectTimeout.
	ReconnectTimeout time.Duration
}

// Defaults for the joining and healing fields of Timings.
const (
	DefaultJoinRetryMin      = 100 * time.Millisecond
	DefaultJoinRetryMax      = 5 * time.Second
	DefaultReconnectInterval = 3 * time.Second
	DefaultReconnectTimeout  = 24 * time.Hour
)

// FastTimings returns aggressive failure-detection timings, meant for tests
// and small clusters on one host or a fast LAN: probe every 250 ms with a
// 150 ms timeout, gossip every 20 ms, suspicion multiplier 3 with a maximum
// suspicion timeout of 3 times the minimum, push/pull every 1 s, a 1 s TCP
// timeout, and healing every 500 ms.
//
// With these timings a member that stops without leaving is suspected once
// some member probes it (each member probes one peer per 250 ms, in turn)
// and the probe round ends; it is declared failed when the suspicion timeout
// runs out: 750 ms once two other members confirm the suspicion, up to
// 2.25 s in a cluster too small to confirm it. The verdict then spreads in a
// few 20 ms gossip rounds: about 1 to 3 s in all for clusters of up to 6
// members.
//
// The timeouts leave room for a host whose cores are saturated by other
// processes: a probe answered 100 ms late is not a failure, and a member
// that is suspected has at least 750 ms to refute it, which it does as soon
// as it is scheduled. Shorter timeouts (a 100 ms probe timeout and a 400 ms
// suspicion) made live members be declared dead on a host with a load of 7
// per core.
func FastTimings() Timings {
	return Timings{
		ProbeInterval:           250 * time.Millisecond,
		ProbeTimeout:            150 * time.Millisecond,
		GossipInterval:          20 * time.Millisecond,
		PushPullInterval:        time.Second,
		TCPTimeout:              time.Second,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 3,
		AwarenessMaxMultiplier:  8,
		IndirectChecks:          3,
		JoinRetryMin:            50 * time.Millisecond,
		JoinRetryMax:            2 * time.Second,
		ReconnectInterval:       500 * time.Millisecond,
	}
}

// FastTimings returns a copy of c whose Timings are FastTimings().
func (c Config) FastTimings() Config {
	c.Timings = FastTimings()
	return c
}

// withDefaults validates t and fills its zero fields with memberlist's LAN
// defaults and the package's joining and healing defaults.
func (t *Timings) withDefaults() error {
	lan := memberlist.DefaultLANConfig()
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"probe interval", &t.ProbeInterval, lan.ProbeInterval},
		{"probe timeout", &t.ProbeTimeout, lan.ProbeTimeout},
		{"gossip interval", &t.GossipInterval, lan.GossipInterval},
		{"push/pull interval", &t.PushPullInterval, lan.PushPullInterval},
		{"TCP timeout", &t.TCPTimeout, lan.TCPTimeout},
		{"join retry minimum", &t.JoinRetryMin, DefaultJoinRetryMin},
		{"join retry maximum", &t.JoinRetryMax, DefaultJoinRetryMax},
		{"reconnect timeout", &t.ReconnectTimeout, DefaultReconnectTimeout},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return invalid("%s %v is negative", d.name, *d.v)
		}
	}
	if t.ReconnectInterval == 0 {
		t.ReconnectInterval = DefaultReconnectInterval
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		return invalid("probe timeout %v must be shorter than probe interval %v", t.ProbeTimeout, t.ProbeInterval)
	}
	if t.JoinRetryMin > t.JoinRetryMax {
		return invalid("join retry minimum %v is above the maximum %v", t.JoinRetryMin, t.JoinRetryMax)
	}
	for _, m := range []struct {
		name string
		v    *int
		def  int
	}{
		{"suspicion multiplier", &t.SuspicionMult, lan.SuspicionMult},
		{"suspicion maximum timeout multiplier", &t.SuspicionMaxTimeoutMult, lan.SuspicionMaxTimeoutMult},
		{"awareness multiplier", &t.AwarenessMaxMultiplier, lan.AwarenessMaxMultiplier},
		{"indirect checks", &t.IndirectChecks, lan.IndirectChecks},
	} {
		switch {
		case *m.v == 0:
			*m.v = m.def
		case *m.v < 0:
			return invalid("%s %d is negative", m.name, *m.v)
		}
	}
	return nil
}

// apply copies t into a memberlist configuration.
func (t Timings) apply(mc *memberlist.Config) {
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.GossipInterval = t.GossipInterval
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
	mc.IndirectChecks = t.IndirectChecks
}
