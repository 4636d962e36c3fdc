package main

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// Summary is the outcome of a run.
type Summary struct {
	Config Config

	Connected  int // connections that joined their topic
	ConnErrors int // connections that failed to open or join, or dropped during the run

	Published     uint64 // publishes written
	Acknowledged  uint64 // publishes answered ok
	Refused       uint64 // publishes answered with an error
	Unanswered    uint64 // publishes without an answer at the end
	Expected      uint64 // deliveries the acknowledged publishes owe the joined connections
	Received      uint64 // broadcasts received, duplicates included
	Duplicates    uint64 // broadcasts received again or out of order
	Skipped       uint64 // counters jumped over on arrival (lost, unless they come later)
	Lost          uint64 // Expected minus unique deliveries, at the end of the drain
	ChannelErrors uint64 // phx_error or phx_close received for a joined topic

	Publishing time.Duration // how long publishing ran
	Elapsed    time.Duration // from the first publish to the last delivery
	P50, P99   time.Duration
	Max        time.Duration
	FirstError string // the first error seen, for the report
}

// Clean reports whether the run saw no loss, duplicate or error.
func (s Summary) Clean() bool {
	return s.Connected == s.Config.Conns && s.ConnErrors == 0 && s.Refused == 0 && s.Unanswered == 0 &&
		s.Lost == 0 && s.Duplicates == 0 && s.ChannelErrors == 0
}

// String formats the summary for people.
func (s Summary) String() string {
	var b bytes.Buffer
	c := s.Config
	fmt.Fprintf(&b, "ringcast-bench: %d connections to %d gateway(s), %d topics, %d publishers, %g msg/s for %v, %d-byte payloads\n",
		c.Conns, len(c.URLs), c.Topics, c.Publishers, c.Rate, c.Duration, c.PayloadSize)
	fmt.Fprintf(&b, "  connections  %d of %d joined, %d errors\n", s.Connected, c.Conns, s.ConnErrors)
	fmt.Fprintf(&b, "  published    %d (%d acknowledged, %d refused, %d unanswered), %.1f/s\n",
		s.Published, s.Acknowledged, s.Refused, s.Unanswered, perSecond(s.Published, s.Publishing))
	fmt.Fprintf(&b, "  received     %d of %d expected, %.1f/s\n", s.Received, s.Expected, perSecond(s.Received, s.Elapsed))
	fmt.Fprintf(&b, "  latency      p50 %v  p99 %v  max %v\n", round(s.P50), round(s.P99), round(s.Max))
	fmt.Fprintf(&b, "  lost         %d\n", s.Lost)
	fmt.Fprintf(&b, "  duplicated   %d\n", s.Duplicates)
	fmt.Fprintf(&b, "  errors       %d (connections %d, refused publishes %d, unanswered %d, channel errors %d)\n",
		uint64(s.ConnErrors)+s.Refused+s.Unanswered+s.ChannelErrors, s.ConnErrors, s.Refused, s.Unanswered, s.ChannelErrors)
	if s.FirstError != "" {
		fmt.Fprintf(&b, "  first error  %s\n", s.FirstError)
	}
	return b.String()
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// progress rewrites one status line on w every second, and once more
// when done closes.
func (l *load) progress(done <-chan struct{}, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	begin := time.Now()
	last := begin
	var lastPub, lastRecv uint64
	for {
		final := false
		select {
		case <-done:
			final = true
		case <-tick.C:
		}
		now := time.Now()
		pub, recv := l.published.Load(), l.received.Load()
		secs := now.Sub(last).Seconds()
		var p99 time.Duration
		if l.hist.Count() > 0 {
			p99 = time.Duration(l.hist.Quantile(0.99))
		}
		fmt.Fprintf(w, "\r%6.0fs  conns %d  published %d (%.0f/s)  received %d (%.0f/s)  p99 %v  skipped %d  errors %d   ",
			now.Sub(begin).Seconds(), len(l.conns), pub, float64(pub-lastPub)/secs, recv, float64(recv-lastRecv)/secs, round(p99),
			l.skipped.Load(), l.refused.Load()+l.dropped.Load()+l.channelErrors.Load())
		if final {
			return
		}
		last, lastPub, lastRecv = now, pub, recv
	}
}

// summary collects what the run measured, once the drain is over.
func (l *load) summary(publishing time.Duration, connectErrs int) Summary {
	s := Summary{
		Config:        l.cfg,
		Connected:     len(l.conns),
		ConnErrors:    connectErrs + int(l.dropped.Load()),
		Published:     l.published.Load(),
		Acknowledged:  l.acknowledged.Load(),
		Refused:       l.refused.Load(),
		Unanswered:    l.unanswered(),
		Expected:      l.expected(),
		Received:      l.received.Load(),
		Duplicates:    l.duplicates.Load(),
		Skipped:       l.skipped.Load(),
		ChannelErrors: l.channelErrors.Load(),
		Publishing:    publishing,
		FirstError:    l.firstError,
	}
	if unique := s.Received - s.Duplicates; unique < s.Expected {
		s.Lost = s.Expected - unique
	}
	if first, last := l.firstPublish.Load(), l.lastReceipt.Load(); first != 0 && last > first {
		s.Elapsed = time.Duration(last - first)
	}
	if l.hist.Count() > 0 {
		s.P50 = time.Duration(l.hist.Quantile(0.50))
		s.P99 = time.Duration(l.hist.Quantile(0.99))
		s.Max = time.Duration(l.hist.Max())
	}
	return s
}
