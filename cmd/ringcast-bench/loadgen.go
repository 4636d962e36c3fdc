package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ringcast/ringcast/bench"
)

const (
	// heartbeatInterval keeps connections alive on gateways that close idle
	// ones (ringcast-ws: 60 s), as Phoenix clients do.
	heartbeatInterval = 25 * time.Second
	// dialers bounds the connections being opened at once.
	dialers = 64
)

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
