package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ringcast/ringcast/bench"
)

const (
	// joinRef is the join_ref of every connection's only join; refs of
	// later messages count up from it.
	joinRef = "1"
	// eventName is the event of the broadcasts the benchmark publishes.
	eventName = "bench"
	// heartbeatInterval keeps connections alive on gateways that close idle
	// ones (ringcast-ws: 60 s), as Phoenix clients do.
	heartbeatInterval = 25 * time.Second
	// dialers bounds the connections being opened at once.
	dialers = 64
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

// loadConn is one WebSocket connection and what its reader tracks.
type loadConn struct {
	id    int
	ws    *websocket.Conn
	topic int
	name  string
	ref   atomic.Uint64 // last ref used; the join used 1

	mu      sync.Mutex
	pending map[string]struct{} // refs of publishes awaiting their reply
	slots   chan struct{}       // bounds pending

	last map[uint64]uint64 // publisher id -> last counter; reader only
}

func (c *loadConn) nextRef() string { return strconv.FormatUint(c.ref.Add(1), 10) }

// load is one run in progress.
type load struct {
	cfg   Config
	conns []*loadConn
	hist  bench.Histogram

	published, acknowledged, refused atomic.Uint64
	received, duplicates, skipped    atomic.Uint64
	channelErrors, dropped           atomic.Uint64
	okPerTopic                       []atomic.Uint64
	members                          []int // joined connections per topic
	firstPublish, lastReceipt        atomic.Int64
	closing                          atomic.Bool
	errMu                            sync.Mutex
	firstError                       string
}

func (l *load) noteError(format string, args ...any) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.firstError == "" {
		l.firstError = fmt.Sprintf(format, args...)
	}
}

// Run opens the connections, joins their topics, publishes for
// cfg.Duration at cfg.Rate, waits up to cfg.Drain for the last deliveries,
// and returns what it measured. A progress line is rewritten on progress
// once per second unless cfg.Quiet. Cancelling ctx stops publishing early
// (and the opening of connections); the drain still runs, so the summary
// covers what was sent. Run returns an error only when cfg is invalid or
// no connection could join.
func Run(ctx context.Context, cfg Config, progress io.Writer) (Summary, error) {
	if err := cfg.validate(); err != nil {
		return Summary{Config: cfg}, err
	}
	l := &load{cfg: cfg, okPerTopic: make([]atomic.Uint64, cfg.Topics), members: make([]int, cfg.Topics)}
	connectErrs := l.connect(ctx)
	if len(l.conns) == 0 {
		return l.summary(0, connectErrs), fmt.Errorf("no connection could join: %s", l.firstError)
	}

	var wg sync.WaitGroup
	for _, c := range l.conns {
		wg.Go(func() { l.read(c) })
	}
	done := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { l.heartbeats(done) })
	if !cfg.Quiet && progress != nil {
		bg.Go(func() { l.progress(done, progress) })
	}

	begin := time.Now()
	l.publish(ctx)
	publishing := time.Since(begin)
	l.drain() // also after ctx ended: the summary should count what is in flight

	close(done)
	bg.Wait()
	if !cfg.Quiet && progress != nil {
		fmt.Fprintln(progress)
	}
	sum := l.summary(publishing, connectErrs)
	l.closeAll()
	wg.Wait()
	return sum, nil
}

// connect opens and joins every connection, dialers at a time. Failed
// connections are counted and left out.
func (l *load) connect(ctx context.Context) int {
	cfg := l.cfg
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	conns := make([]*loadConn, cfg.Conns)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(dialers, cfg.Conns) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns || ctx.Err() != nil {
					return
				}
				c, err := l.open(ctx, client, i)
				if err != nil {
					l.noteError("connection %d: %v", i, err)
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			l.conns = append(l.conns, c)
			l.members[c.topic]++
		}
	}
	return cfg.Conns - len(l.conns)
}

// open dials connection i and joins its topic.
func (l *load) open(ctx context.Context, client *http.Client, i int) (*loadConn, error) {
	cfg := l.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, cfg.URLs[i%len(cfg.URLs)], &websocket.DialOptions{
		HTTPClient:   client,
		Subprotocols: []string{"phoenix"},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(int64(cfg.PayloadSize) + 64<<10)
	topic := i % cfg.Topics
	c := &loadConn{
		id:      i,
		ws:      ws,
		topic:   topic,
		name:    cfg.TopicPrefix + strconv.Itoa(topic),
		pending: make(map[string]struct{}),
		slots:   make(chan struct{}, maxInFlight),
		last:    make(map[uint64]uint64),
	}
	c.ref.Store(1)
	join := `["` + joinRef + `","` + joinRef + `",` + strconv.Quote(c.name) + `,"phx_join",{}]`
	if err := ws.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			_ = ws.CloseNow()
			return nil, fmt.Errorf("join %s: %w", c.name, err)
		}
		r, ok := parseReply(data)
		if !ok || r.ref != joinRef {
			continue
		}
		if r.status != "ok" {
			_ = ws.CloseNow()
			return nil, fmt.Errorf("join %s refused: %s", c.name, r.reason)
		}
		return c, nil
	}
}

// publish runs the publishers until cfg.Duration passes or ctx ends.
func (l *load) publish(ctx context.Context) {
	cfg := l.cfg
	if cfg.Rate == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Duration):
		}
		return
	}
	var pubs []*loadConn
	for _, c := range l.conns {
		if c.id < cfg.Publishers {
			pubs = append(pubs, c)
		}
	}
	if len(pubs) == 0 {
		l.noteError("none of the first %d connections joined: nobody publishes", cfg.Publishers)
		return
	}
	interval := time.Duration(float64(time.Second) * float64(len(pubs)) / cfg.Rate)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	l.firstPublish.Store(bench.Now())
	var wg sync.WaitGroup
	for k, c := range pubs {
		// Spread the publishers' schedules over one interval.
		offset := interval * time.Duration(k) / time.Duration(len(pubs))
		wg.Go(func() { l.publisher(ctx, c, interval, offset) })
	}
	wg.Wait()
}

// publisher publishes on c every interval until ctx ends. When it falls
// behind, it catches up as fast as its replies allow.
func (l *load) publisher(ctx context.Context, c *loadConn, interval, offset time.Duration) {
	start := time.Now().Add(offset)
	payload := make([]byte, 0, l.cfg.PayloadSize+128)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := uint64(1); ; n++ {
		if wait := time.Until(start.Add(time.Duration(n-1) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		ref := c.nextRef()
		payload = l.frame(payload[:0], c, ref, n)
		c.mu.Lock()
		c.pending[ref] = struct{}{}
		c.mu.Unlock()
		wctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
		err := c.ws.Write(wctx, websocket.MessageText, payload)
		cancel()
		if err != nil {
			c.mu.Lock()
			delete(c.pending, ref)
			c.mu.Unlock()
			<-c.slots
			if !l.closing.Load() {
				l.noteError("publish on connection %d: %v", c.id, err)
			}
			return
		}
		l.published.Add(1)
	}
}

// frame appends one publish message: the payload object carries the
// publisher's id, its counter and the send time, padded to PayloadSize.
func (l *load) frame(b []byte, c *loadConn, ref string, n uint64) []byte {
	b = append(b, `["`+joinRef+`","`...)
	b = append(b, ref...)
	b = append(b, `",`...)
	b = strconv.AppendQuote(b, c.name)
	b = append(b, `,"publish",["`+eventName+`",`...)
	obj := len(b)
	b = append(b, `{"p":`...)
	b = strconv.AppendInt(b, int64(c.id), 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, bench.Now(), 10)
	b = append(b, `,"x":"`...)
	for len(b)-obj < l.cfg.PayloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}]]`...)
}

// read handles everything the gateway sends on c until it closes.
func (l *load) read(c *loadConn) {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if !l.closing.Load() {
				l.dropped.Add(1)
				l.noteError("connection %d dropped: %v", c.id, err)
			}
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		if p, n, t, ok := parseBroadcast(data); ok {
			now := bench.Now()
			l.hist.Record(now - t)
			l.received.Add(1)
			l.lastReceipt.Store(now)
			switch last := c.last[p]; {
			case n <= last:
				l.duplicates.Add(1)
			default:
				if n > last+1 {
					l.skipped.Add(n - last - 1)
				}
				c.last[p] = n
			}
			continue
		}
		r, ok := parseReply(data)
		if !ok {
			continue
		}
		if r.event == "phx_error" || r.event == "phx_close" {
			l.channelErrors.Add(1)
			l.noteError("connection %d: %s on %s", c.id, r.event, c.name)
			continue
		}
		if r.topic != c.name {
			continue // heartbeat replies
		}
		c.mu.Lock()
		_, mine := c.pending[r.ref]
		delete(c.pending, r.ref)
		c.mu.Unlock()
		if !mine {
			continue
		}
		<-c.slots
		if r.status == "ok" {
			l.acknowledged.Add(1)
			l.okPerTopic[c.topic].Add(1)
		} else {
			l.refused.Add(1)
			l.noteError("publish refused on connection %d: %s", c.id, r.reason)
		}
	}
}

// expected returns the deliveries owed so far: every acknowledged publish
// to every connection joined to its topic (the publisher included).
func (l *load) expected() uint64 {
	var n uint64
	for k := range l.okPerTopic {
		n += l.okPerTopic[k].Load() * uint64(l.members[k])
	}
	return n
}

func (l *load) unanswered() uint64 {
	var n uint64
	for _, c := range l.conns {
		c.mu.Lock()
		n += uint64(len(c.pending))
		c.mu.Unlock()
	}
	return n
}

// drain waits until the replies are in and every expected delivery has
// arrived, for at most Timeout and Drain respectively.
func (l *load) drain() {
	deadline := time.Now().Add(l.cfg.Timeout)
	for l.unanswered() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(l.cfg.Drain)
	for l.received.Load()-l.duplicates.Load() < l.expected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// heartbeats sends a Phoenix heartbeat on every connection every
// heartbeatInterval until done is closed.
func (l *load) heartbeats(done <-chan struct{}) {
	tick := time.NewTicker(heartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		for _, c := range l.conns {
			select {
			case <-done:
				return
			default:
			}
			msg := `[null,"` + c.nextRef() + `","phoenix","heartbeat",{}]`
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
			_ = c.ws.Write(ctx, websocket.MessageText, []byte(msg))
			cancel()
		}
	}
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

// closeAll closes every connection with a normal closure, dialers at a
// time.
func (l *load) closeAll() {
	l.closing.Store(true)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(dialers, len(l.conns)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(l.conns) {
					return
				}
				_ = l.conns[i].ws.Close(websocket.StatusNormalClosure, "benchmark over")
			}
		})
	}
	wg.Wait()
}

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

// reply is what the reader needs of a non-broadcast message.
type reply struct {
	ref, topic, event, status, reason string
}

// parseReply decodes a message [join_ref, ref, topic, event, payload].
func parseReply(data []byte) (reply, bool) {
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil || len(arr) < 5 {
		return reply{}, false
	}
	var r reply
	_ = json.Unmarshal(arr[1], &r.ref)
	_ = json.Unmarshal(arr[2], &r.topic)
	_ = json.Unmarshal(arr[3], &r.event)
	var p struct {
		Status   string `json:"status"`
		Response struct {
			Reason string `json:"reason"`
		} `json:"response"`
	}
	_ = json.Unmarshal(arr[4], &p)
	r.status, r.reason = p.Status, p.Response.Reason
	return r, true
}

// broadcastPrefix starts every broadcast to a connection: its join_ref,
// then a null ref.
var broadcastPrefix = []byte(`["` + joinRef + `",null,`)

// parseBroadcast extracts publisher id, counter and send time from a
// broadcast of the benchmark's own payload, without decoding the rest.
func parseBroadcast(data []byte) (p, n uint64, t int64, ok bool) {
	if !bytes.HasPrefix(data, broadcastPrefix) {
		return 0, 0, 0, false
	}
	i := bytes.Index(data, []byte(`{"p":`))
	if i < 0 {
		return 0, 0, 0, false
	}
	rest := data[i+len(`{"p":`):]
	p, rest, ok1 := cutUint(rest, `,"n":`)
	n, rest, ok2 := cutUint(rest, `,"t":`)
	tt, _, ok3 := cutUint(rest, `,`)
	if !ok1 || !ok2 || !ok3 || tt > math.MaxInt64 {
		return 0, 0, 0, false
	}
	return p, n, int64(tt), true
}

// cutUint parses the decimal number at the start of b, which must be
// followed by sep, and returns it with what follows sep.
func cutUint(b []byte, sep string) (uint64, []byte, bool) {
	j := bytes.Index(b, []byte(sep))
	if j <= 0 {
		return 0, nil, false
	}
	v, err := strconv.ParseUint(string(b[:j]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return v, b[j+len(sep):], true
}
