package gateway

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cws "github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// A connection runs up to three goroutines, all owned by the conn and ended
// before its serveConn goroutine (the reader) returns:
//   - the reader reads messages, answers heartbeats and malformed messages
//     itself, and hands the rest to the worker in order;
//   - the worker runs joins, leaves and publishes one at a time, as Phoenix
//     runs a channel's messages; it is started on demand and exits when idle;
//   - the writer drains the outbound queue in batches; it is started when
//     something is queued and exits once the queue is empty, and it sends the
//     close message when the connection shuts down.
//
// conn.mu guards the queue and the joins; it is never held during I/O or a
// broker call.

const (
	// pendingOps bounds the messages read but not yet handled by the worker;
	// past it the reader waits, which pushes back on the client over TCP.
	pendingOps = 16

	reasonSlowConsumer = "slow consumer"
	reasonIdleTimeout  = "idle timeout"
	reasonShutdown     = "server shutting down"
)

type conn struct {
	h  *Handler
	id uint64
	// ctx ends with the connection. Reads and writes on the WebSocket take
	// no context: they are bounded by the idle timer, the write deadlines of
	// corkConn, and kill, which closes the socket.
	ctx    context.Context
	cancel context.CancelFunc
	// opCtx bounds the joins and publishes of the worker; it ends as soon as
	// the connection starts closing.
	opCtx    context.Context
	opCancel context.CancelFunc
	done     chan struct{} // closed by shutdown
	ops      chan *frame   // messages for the worker

	working atomic.Bool
	workers sync.WaitGroup
	writer  sync.WaitGroup // the writer goroutine; Add with mu held
	// writeLoopFn is c.writeLoop, made once: a go statement on a method
	// value would allocate its closure each time the writer starts.
	writeLoopFn func()
	idle        *time.Timer
	scratch     []byte // the writer's buffer for receiver prefixes

	ws  *cws.Conn
	raw *corkConn
	// identity is who the client authenticated as, remote and ip its
	// address, header the upgrade request's header, and user its user's
	// limits (nil: none); set before serve.
	identity Identity
	remote   string
	ip       string
	header   http.Header
	user     *userLimit

	// The worker's: the connection's rate limiters, made on first use.
	joinLim, publishLim, refusals *rate.Limiter

	mu           sync.Mutex
	closed       bool
	killed       bool
	writing      bool // a writer goroutine runs
	closeCode    cws.StatusCode
	closeReason  string
	flushOnClose bool
	slow         bool // closed as a slow consumer

	// Guarded by mu, kept by the writer (see checkUnacked): bytes written
	// to the socket, how many of them the client had acknowledged at the
	// last check, and when that last grew.
	sent    int64
	acked   int64
	ackedAt time.Time
	queue   []outItem
	spare   []outItem
	queued  int // bytes queued, held or being written
	joins   map[string]*join
}

func newConn(h *Handler, id uint64) *conn {
	ctx, cancel := context.WithCancel(h.ctx)
	opCtx, opCancel := context.WithCancel(ctx)
	c := &conn{
		h:        h,
		id:       id,
		ctx:      ctx,
		cancel:   cancel,
		opCtx:    opCtx,
		opCancel: opCancel,
		done:     make(chan struct{}),
		ops:      make(chan *frame, pendingOps),
		joins:    make(map[string]*join),
	}
	c.writeLoopFn = c.writeLoop
	return c
}

// attach hands the upgraded connection to c. It reports false if c was
// killed meanwhile.
func (c *conn) attach(ws *cws.Conn, raw *corkConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws, c.raw = ws, raw
	if c.closed {
		// Shut down before it was attached: the writer sends the close message.
		c.startWriterLocked()
	}
	return !c.killed
}

// serve runs the connection until it ends, then leaves every topic.
func (c *conn) serve() {
	c.idle = time.AfterFunc(c.h.opts.IdleTimeout, func() {
		c.shutdown(cws.StatusPolicyViolation, reasonIdleTimeout, true)
	})
	c.readLoop()
	c.idle.Stop()
	c.shutdown(cws.StatusNormalClosure, "", true)
	c.workers.Wait()
	c.writer.Wait()
	c.cancel()
	_ = c.raw.Close()

	c.mu.Lock()
	joins := make([]*join, 0, len(c.joins))
	for _, j := range c.joins {
		joins = append(joins, j)
	}
	c.mu.Unlock()
	for _, j := range joins {
		if j.session != nil {
			// Ended as the connection shut down (endSessionsLocked).
			continue
		}
		_, unsub := c.h.hub.leave(j)
		c.h.hub.unsubscribe(j.topic, unsub)
	}
}

func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if status := cws.CloseStatus(err); status == -1 {
				c.h.log.Debug("gateway: connection read ended", "conn", c.id, "err", err)
			}
			return
		}
		c.idle.Reset(c.h.opts.IdleTimeout)
		c.h.stats.framesIn.Add(1)
		if !c.handleMessage(typ, data) {
			return
		}
	}
}

// handleMessage handles one message from the client. It reports false once
// the connection is shutting down.
func (c *conn) handleMessage(typ cws.MessageType, data []byte) bool {
	var f frame
	var err error
	if typ == cws.MessageBinary {
		f, err = parseBinaryFrame(data)
	} else {
		f, err = parseJSONFrame(data)
	}
	switch {
	case err != nil:
		c.refuse(&f, err)
	case f.topic == topicPhoenix:
		switch f.event {
		case eventHeartbeat:
			c.reply(&f, statusOK, []byte(emptyObject))
		case eventJoin:
			c.refuseReason(&f, reasonReservedTopic)
		default:
			c.refuseReason(&f, reasonUnknownEvent)
		}
	default:
		select {
		case c.ops <- &f:
		case <-c.done:
			return false
		}
		if c.working.CompareAndSwap(false, true) {
			c.workers.Add(1)
			go c.work()
		}
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// work handles queued messages one at a time and exits once there are none.
func (c *conn) work() {
	defer c.workers.Done()
	for {
		select {
		case f := <-c.ops:
			c.handle(f)
			continue
		case <-c.done:
			return
		default:
		}
		c.working.Store(false)
		if len(c.ops) == 0 || !c.working.CompareAndSwap(false, true) {
			return
		}
	}
}

func (c *conn) handle(f *frame) {
	switch f.event {
	case eventJoin:
		if !c.allow(opJoin, f) {
			return
		}
		if ch := c.h.channels.route(f.topic); ch != nil {
			c.handleChannelJoin(f, ch)
		} else {
			c.handleJoin(f)
		}
	case eventLeave:
		if j := c.lookup(f.topic, f.joinRef); j != nil && j.session != nil {
			c.handleChannelLeave(f, j)
		} else {
			c.handleLeave(f)
		}
	default:
		j := c.lookup(f.topic, f.joinRef)
		switch {
		case j == nil:
			c.refuseReason(f, reasonUnmatchedTopic)
		case j.session != nil:
			if c.allow(opPublish, f) {
				c.handleChannelEvent(f, j)
			}
		case f.event == eventPublish || f.binary && strings.HasPrefix(f.event, publishEventPrefix):
			if c.allow(opPublish, f) {
				c.handlePublish(f, j)
			}
		default:
			c.refuseReason(f, reasonUnknownEvent)
		}
	}
}

// lookup returns the join of topic that joinRef designates, or nil.
func (c *conn) lookup(topic string, joinRef optString) *join {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.joins[topic]
	if j == nil || !j.joinRef.matches(joinRef) {
		return nil
	}
	return j
}

// shutdown starts closing the connection: the writer sends a close message
// with code and reason (after what is queued if flush is set) and the reader
// stops once the close handshake ends. Only the first call counts.
func (c *conn) shutdown(code cws.StatusCode, reason string, flush bool) {
	c.mu.Lock()
	c.shutdownLocked(code, reason, flush)
	c.mu.Unlock()
}

// shutdownLocked starts closing the connection. The sessions of its
// channel joins end at once: their contexts are cancelled (which runs no
// code of theirs on this goroutine).
func (c *conn) shutdownLocked(code cws.StatusCode, reason string, flush bool) {
	if c.closed {
		return
	}
	c.closed = true
	c.closeCode, c.closeReason, c.flushOnClose = code, reason, flush
	close(c.done)
	c.opCancel()
	for _, s := range c.endSessionsLocked() {
		s.cancel(ErrDisconnected)
	}
	c.startWriterLocked()
}

// kill cuts the connection at once: pending reads and writes fail.
func (c *conn) kill() {
	c.shutdown(cws.StatusGoingAway, reasonShutdown, false)
	c.mu.Lock()
	c.killed = true
	raw := c.raw
	c.mu.Unlock()
	c.cancel()
	if raw != nil {
		_ = raw.Close()
	}
}
