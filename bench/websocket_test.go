package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

const (
	// wsConnsEnv sets W4's number of connections (default wsDefaultConns).
	// Past about 9,000 the gateway process needs more than the usual 20,000
	// file descriptors (ulimit -n): one per connection, plus the node's.
	wsConnsEnv     = "RINGCAST_BENCH_CONNS"
	wsDefaultConns = 1000
	// wsConnsPerChild bounds the connections of one client process; each
	// child dials from its own loopback address (127.0.0.2, .3, ...), so
	// that no address runs out of ephemeral ports.
	wsConnsPerChild = 15000
	// wsHeapProfileEnv names a file that receives a heap profile of the
	// gateway's process taken while every connection is idle.
	wsHeapProfileEnv = "RINGCAST_BENCH_HEAPPROFILE"
	wsTopic          = "bench:w4"
	wsPath           = "/socket/websocket"
)

// wsChild is one client process.
type wsChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	conns int
}

// startWSChildren starts client processes holding conns connections to
// url in all, each joined to wsTopic, and waits until all are ready.
func startWSChildren(b *testing.B, url string, conns int) []*wsChild {
	b.Helper()
	var children []*wsChild
	b.Cleanup(func() {
		for _, c := range children {
			c.stop()
		}
	})
	for i := 0; conns > 0; i++ {
		n := min(conns, wsConnsPerChild)
		conns -= n
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			wsClientEnv+"="+url,
			wsClientConns+"="+strconv.Itoa(n),
			wsClientTopic+"="+wsTopic,
			wsClientIP+"=127.0.0."+strconv.Itoa(2+i),
		)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		c := &wsChild{cmd: cmd, stdin: stdin, lines: make(chan string, 1024), conns: n}
		children = append(children, c)
		go func() {
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
		}()
	}
	for _, c := range children {
		if _, err := c.expect("ready", wsClientTimeout+5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	return children
}

// expect waits for a line starting with prefix and returns the rest of it.
// "got" lines that come first are skipped.
func (c *wsChild) expect(prefix string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("client process %d exited while waiting for %q", c.cmd.Process.Pid, prefix)
			}
			if rest, found := strings.CutPrefix(line, "error "); found {
				return "", fmt.Errorf("client process %d: %s", c.cmd.Process.Pid, rest)
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return strings.TrimSpace(rest), nil
			}
		case <-timer.C:
			return "", fmt.Errorf("client process %d: no %q within %v", c.cmd.Process.Pid, prefix, timeout)
		}
	}
}

func (c *wsChild) send(cmd string) error {
	_, err := io.WriteString(c.stdin, cmd+"\n")
	return err
}

// stop asks the child to exit and kills it by its PID if it does not
// within a few seconds.
func (c *wsChild) stop() {
	_ = c.send("exit")
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() {
		for range c.lines {
		}
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// gatewayServer serves a gateway Handler backed by a one-node cluster on
// 127.0.0.1, with an http.Server as ringcast-ws runs it.
type gatewayServer struct {
	handler *gateway.Handler
	broker  gateway.Broker
	url     string
}

func startGateway(b *testing.B) *gatewayServer {
	b.Helper()
	node := startCluster(b, 1, nil)[0]
	brk := broker.New(node)
	// Each client process dials up to wsConnsPerChild connections from
	// one address.
	h := gateway.NewHandler(brk, &gateway.Options{IdleTimeout: time.Hour, MaxConnsPerAddr: -1})
	mux := http.NewServeMux()
	mux.Handle(wsPath, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
		<-served
	})
	return &gatewayServer{handler: h, broker: brk, url: "ws://" + ln.Addr().String() + wsPath + "?vsn=2.0.0"}
}

// memSnapshot is what W4 compares before and after the connections.
type memSnapshot struct {
	heap, stack uint64
	goroutines  int
}

func snapshot() memSnapshot {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return memSnapshot{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// wsPayload is a 128-byte JSON object whose first field is the send time.
func wsPayload() []byte {
	p := fmt.Appendf(nil, `{"t":%d,"p":"`, Now())
	for len(p) < payloadSize-2 {
		p = append(p, 'x')
	}
	return append(p, '"', '}')
}

// BenchmarkWebSocket is W4: N connections (RINGCAST_BENCH_CONNS, default
// 1,000) on one gateway, each joined to one topic. It reports what an idle
// connection costs the gateway's process (heap-B/conn, stack-B/conn,
// goroutines/conn; kernel socket buffers are not included) and, per op, one
// broadcast to all of them: published through the gateway's broker (a
// one-node cluster) and timed from before Publish to receipt by each
// client. Broadcasts go one at a time: the next starts once every client
// has the last. The clients run in child processes.
func BenchmarkWebSocket(b *testing.B) {
	conns := envInt(b, wsConnsEnv, wsDefaultConns)
	b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
		gw := startGateway(b)
		before := snapshot()
		children := startWSChildren(b, gw.url, conns)
		waitFor(b, 30*time.Second, "the gateway to count every connection", func() bool {
			st := gw.handler.Stats()
			return st.Connections == int64(conns) && st.Joins == uint64(conns)
		})
		after := snapshot()
		if path := os.Getenv(wsHeapProfileEnv); path != "" {
			writeHeapProfile(b, path)
		}

		ctx := context.Background()
		broadcast := func(k int) {
			data := gateway.EncodeEnvelope("bench", wsPayload(), false)
			if _, err := gw.broker.Publish(ctx, wsTopic, data); err != nil {
				b.Fatal(err)
			}
			for _, c := range children {
				got, err := c.expect("got", drainTimeout)
				if err != nil {
					b.Fatal(err)
				}
				if got != strconv.Itoa(k) {
					b.Fatalf("client process %d reports %s broadcasts, want %d", c.cmd.Process.Pid, got, k)
				}
			}
		}
		const warmup = 10
		for k := 1; k <= warmup; k++ {
			broadcast(k)
		}
		for _, c := range children {
			if err := c.send("reset"); err != nil {
				b.Fatal(err)
			}
			if _, err := c.expect("reset", 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		begin := time.Now()
		for k := 1; k <= b.N; k++ {
			broadcast(k)
		}
		elapsed := time.Since(begin)
		b.StopTimer()

		var h Histogram
		for _, c := range children {
			if err := c.send("hist"); err != nil {
				b.Fatal(err)
			}
			js, err := c.expect("hist", 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			var d histogramDump
			if err := json.Unmarshal([]byte(js), &d); err != nil {
				b.Fatal(err)
			}
			h.merge(d)
		}
		if got, want := h.Count(), uint64(b.N)*uint64(conns); got != want {
			b.Fatalf("clients timed %d deliveries, want %d", got, want)
		}
		b.ReportMetric(float64(b.N)*float64(conns)/elapsed.Seconds(), "deliveries/s")
		h.report(b)
		// ResetTimer drops metrics reported before it: these go last.
		b.ReportMetric(float64(int64(after.heap)-int64(before.heap))/float64(conns), "heap-B/conn")
		b.ReportMetric(float64(int64(after.stack)-int64(before.stack))/float64(conns), "stack-B/conn")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(conns), "goroutines/conn")
		if st := gw.handler.Stats(); st.SlowConsumers != 0 || st.Connections != int64(conns) {
			b.Fatalf("gateway: %d slow consumers, %d of %d connections left", st.SlowConsumers, st.Connections, conns)
		}
	})
}
