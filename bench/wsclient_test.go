package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The WebSocket clients of W4 run in child processes (the test binary run
// again with wsClientEnv set), so that the gateway's process holds only
// its own side of each connection: its heap, goroutines and descriptors
// are measured without the clients'. A child speaks a line protocol:
//
//	child -> parent: "ready" once every connection has joined the topic,
//	                 "got K" once every connection has received K messages,
//	                 "hist JSON" (a histogramDump) in answer to "hist",
//	                 "error TEXT" when it gives up.
//	                 "reset" in answer to "reset".
//	parent -> child: "hist", "reset" (zero the counters), "exit".

// Environment of a client child.
const (
	wsClientEnv   = "RINGCAST_BENCH_WSCLIENT" // the gateway URL; set only in children
	wsClientConns = "RINGCAST_BENCH_WSCLIENT_CONNS"
	wsClientTopic = "RINGCAST_BENCH_WSCLIENT_TOPIC"
	wsClientIP    = "RINGCAST_BENCH_WSCLIENT_IP" // local address to dial from
)

// wsClientTimeout bounds a child's dials, handshakes and joins.
const wsClientTimeout = 60 * time.Second

// histogramDump carries a histogram between processes: the non-empty
// buckets as index, count pairs.
type histogramDump struct {
	Buckets [][2]uint64 `json:"buckets"`
	Max     int64       `json:"max"`
}

func (h *Histogram) dump() histogramDump {
	var d histogramDump
	for i := range h.buckets {
		if n := h.buckets[i].Load(); n != 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), n})
		}
	}
	d.Max = h.max.Load()
	return d
}

func (h *Histogram) merge(d histogramDump) {
	for _, b := range d.Buckets {
		if b[0] < uint64(len(h.buckets)) {
			h.buckets[b[0]].Add(b[1])
		}
	}
	for {
		m := h.max.Load()
		if d.Max <= m || h.max.CompareAndSwap(m, d.Max) {
			return
		}
	}
}

// wsClientMain is the child's main function; it returns the exit status.
func wsClientMain() int {
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
	}
	n, err := strconv.Atoi(os.Getenv(wsClientConns))
	if err != nil || n <= 0 {
		say("error bad %s", wsClientConns)
		return 2
	}
	c := &wsClients{
		url:   os.Getenv(wsClientEnv),
		topic: os.Getenv(wsClientTopic),
		local: os.Getenv(wsClientIP),
		say:   say,
	}
	if err := c.connect(n); err != nil {
		say("error %v", err)
		return 1
	}
	say("ready")
	for _, rc := range c.conns {
		go c.read(rc)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "hist":
			b, _ := json.Marshal(c.hist.dump())
			say("hist %s", b)
		case "reset":
			c.hist.Reset()
			c.total.Store(0)
			say("reset")
		case "exit":
			c.close()
			return 0
		}
	}
	c.close()
	return 0
}

// wsClients are the connections of one child.
type wsClients struct {
	url, topic, local string
	say               func(string, ...any)
	conns             []*rawWS
	hist              Histogram
	total             atomic.Int64 // messages received over all connections
	closed            atomic.Bool
}

func (c *wsClients) connect(n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), wsClientTimeout)
	defer cancel()
	c.conns = make([]*rawWS, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(n, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				rc, err := dialRawWS(ctx, c.url, c.local)
				if err == nil {
					err = rc.join(c.topic)
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("connection %d: %w", i, err) })
					cancel()
					return
				}
				c.conns[i] = rc
			}
		})
	}
	wg.Wait()
	if first != nil {
		c.close()
	}
	return first
}

func (c *wsClients) close() {
	c.closed.Store(true)
	for _, rc := range c.conns {
		if rc != nil {
			_ = rc.conn.Close()
		}
	}
}

// read receives broadcasts on one connection until it closes.
func (c *wsClients) read(rc *rawWS) {
	n := int64(len(c.conns))
	for {
		op, msg, err := rc.readFrame()
		if err != nil {
			if !c.closed.Load() {
				c.say("error read: %v", err)
			}
			return
		}
		if op != wsOpText {
			continue
		}
		i := bytes.Index(msg, []byte(`{"t":`))
		if i < 0 {
			continue
		}
		rest := msg[i+5:]
		j := bytes.IndexByte(rest, ',')
		t, err := strconv.ParseInt(string(rest[:max(j, 0)]), 10, 64)
		if err != nil {
			continue
		}
		c.hist.Record(Now() - t)
		if v := c.total.Add(1); v%n == 0 {
			c.say("got %d", v/n)
		}
	}
}

// rawWS is a minimal WebSocket client: enough to join a topic and read
// text frames, with no goroutine of its own.
type rawWS struct {
	conn net.Conn
	r    *bufio.Reader
}

const (
	wsOpText  = 1
	wsOpClose = 8
	wsOpPing  = 9
)

func dialRawWS(ctx context.Context, rawURL, local string) (*rawWS, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		_ = conn.Close()
		return nil, err
	}
	rc := &rawWS{conn: conn, r: bufio.NewReaderSize(conn, 512)}
	status, err := rc.r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		_ = conn.Close()
		return nil, fmt.Errorf("upgrade refused: %q %v", strings.TrimSpace(status), err)
	}
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	return rc, nil
}

// join joins topic and waits for the reply; it clears the deadline after.
func (rc *rawWS) join(topic string) error {
	msg := `["1","1",` + strconv.Quote(topic) + `,"phx_join",{}]`
	if err := rc.writeText([]byte(msg)); err != nil {
		return err
	}
	for {
		op, reply, err := rc.readFrame()
		if err != nil {
			return err
		}
		if op != wsOpText {
			continue
		}
		if !bytes.Contains(reply, []byte(`"phx_reply"`)) || !bytes.Contains(reply, []byte(`"ok"`)) {
			return fmt.Errorf("join refused: %s", reply)
		}
		return rc.conn.SetDeadline(time.Time{})
	}
}

// writeText writes one masked text frame.
func (rc *rawWS) writeText(p []byte) error {
	var hdr [14]byte
	hdr[0] = 0x80 | wsOpText
	n := 2
	switch {
	case len(p) < 126:
		hdr[1] = 0x80 | byte(len(p))
	case len(p) <= 0xffff:
		hdr[1] = 0x80 | 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(len(p)))
		n = 4
	default:
		return errors.New("frame too large")
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	copy(hdr[n:], mask[:])
	n += 4
	buf := make([]byte, 0, n+len(p))
	buf = append(buf, hdr[:n]...)
	for i, c := range p {
		buf = append(buf, c^mask[i%4])
	}
	_, err := rc.conn.Write(buf)
	return err
}

// readFrame reads one unfragmented frame from the server.
func (rc *rawWS) readFrame() (op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(rc.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	op = hdr[0] & 0x0f
	size := uint64(hdr[1] & 0x7f)
	switch size {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(rc.r, ext[:]); err != nil {
			return 0, nil, err
		}
		size = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(rc.r, ext[:]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(ext[:])
	}
	if size > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", size)
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(rc.r, payload); err != nil {
		return 0, nil, err
	}
	if op == wsOpClose {
		return op, payload, io.EOF
	}
	return op, payload, nil
}
