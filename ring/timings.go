package ring

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// Timings tune failure detection and gossip. Zero fields take memberlist's
// LAN defaults: probe every 1 s with a 500 ms timeout, gossip every 200 ms,
// push/pull every 30 s, TCP timeout 10 s, suspicion multiplier 4.
// ProbeTimeout must be shorter than ProbeInterval. See FastTimings.
type Timings struct {
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	TCPTimeout       time.Duration
	SuspicionMult    int
}

// FastTimings returns aggressive failure-detection timings, meant for tests
// and small clusters on one host or a fast LAN: probe every 200 ms with a
// 100 ms timeout, gossip every 20 ms, suspicion multiplier 2, push/pull
// every 1 s and a 1 s TCP timeout.
//
// With these timings a member that stops without leaving is declared failed
// once some member probes it (each member probes one peer per 200 ms, in
// turn), the probe round ends (200 ms) and the suspicion timeout runs out
// (2 × 200 ms for clusters of up to 10 members); the verdict then spreads in
// a few 20 ms gossip rounds. That is about 0.6 s plus at most 0.2 s per
// member: under 2 s for clusters of up to 6 members on a healthy host. A
// 100 ms probe timeout leaves a busy host some slack; a 50 ms one made
// loaded test machines declare live members dead.
func FastTimings() Timings {
	return Timings{
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		GossipInterval:   20 * time.Millisecond,
		PushPullInterval: time.Second,
		TCPTimeout:       time.Second,
		SuspicionMult:    2,
	}
}

// FastTimings returns a copy of c whose Timings are FastTimings().
func (c Config) FastTimings() Config {
	c.Timings = FastTimings()
	return c
}

// withDefaults validates t and fills its zero fields with memberlist's LAN
// defaults.
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
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return invalid("%s %v is negative", d.name, *d.v)
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		return invalid("probe timeout %v must be shorter than probe interval %v", t.ProbeTimeout, t.ProbeInterval)
	}
	switch {
	case t.SuspicionMult == 0:
		t.SuspicionMult = lan.SuspicionMult
	case t.SuspicionMult < 0:
		return invalid("suspicion multiplier %d is negative", t.SuspicionMult)
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
}
