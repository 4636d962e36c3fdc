package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ringcast/ringcast/bench"
)

// redisSystem is one redis-server process, started here and stopped by its
// PID, reached over a unix socket (so no TCP port is chosen in advance).
// Redis pub/sub is one server whatever the number of nodes: a node is a
// set of client connections. Redis sends a message once per subscribed
// connection and ignores a second SUBSCRIBE to a channel on one
// connection, so:
//
//   - "redis" gives each subscriber its own copy, as NATS and ringcast
//     subscriptions have: the k-th subscriber of a topic on a node
//     subscribes on the node's k-th connection (W2: 150 connections per
//     node; W3: one, as each topic has one subscriber).
//   - "redis-local" subscribes each topic once per node and calls the
//     node's subscribers of it one after another on the connection's
//     reader: one copy per node, like ringcast, but with no buffer per
//     subscriber, so one slow subscriber stalls all of them. It bounds what
//     a node-local fan-out can reach.
//
// Publishes are pipelined: Flush, or every redisBatch publishes, sends
// them.
type redisSystem struct {
	name    string
	local   bool
	proc    *redisProcess
	clients []*redis.Client
	nodes   []*redisNode
	wg      sync.WaitGroup
}

// redisBatch is the number of publishes sent in one pipeline.
const redisBatch = 64

type redisNode struct {
	client  *redis.Client
	mu      sync.Mutex
	conns   []*redisSubConn
	pipe    redis.Pipeliner
	pending int
}

// redisSubConn is one subscribing connection and its reader.
type redisSubConn struct {
	ps     *redis.PubSub
	mu     sync.RWMutex
	topics map[string][]func(int64)
}

// redisServerPath is the redis-server binary; empty means look it up in
// PATH.
var redisServerPath = ""

func startRedis(ctx context.Context, n int) (System, error) {
	return startRedisMode(ctx, n, false)
}

func startRedisLocal(ctx context.Context, n int) (System, error) {
	return startRedisMode(ctx, n, true)
}

func startRedisMode(ctx context.Context, n int, local bool) (System, error) {
	proc, err := startRedisProcess(ctx)
	if err != nil {
		return nil, err
	}
	s := &redisSystem{name: "redis", local: local, proc: proc}
	if local {
		s.name = "redis-local"
	}
	for range n {
		c := redis.NewClient(&redis.Options{Network: "unix", Addr: proc.socket, PoolSize: 4})
		s.clients = append(s.clients, c)
		s.nodes = append(s.nodes, &redisNode{client: c, pipe: c.Pipeline()})
	}
	return s, nil
}

func (c *redisSubConn) receive() {
	for {
		m, err := c.ps.ReceiveMessage(context.Background())
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		var sent int64
		if len(m.Payload) >= 8 {
			sent = bench.SentAt([]byte(m.Payload[:8]))
		}
		c.mu.RLock()
		fns := c.topics[m.Channel]
		c.mu.RUnlock()
		for _, fn := range fns {
			fn(sent)
		}
	}
}

func (s *redisSystem) Name() string { return s.name }

func (s *redisSystem) Subscribe(ctx context.Context, node int, topic string, fn func(int64)) error {
	nd := s.nodes[node]
	nd.mu.Lock()
	var c *redisSubConn
	for _, x := range nd.conns {
		x.mu.RLock()
		_, taken := x.topics[topic]
		x.mu.RUnlock()
		if !taken || s.local {
			c = x
			break
		}
	}
	if c == nil {
		c = &redisSubConn{ps: nd.client.Subscribe(ctx), topics: make(map[string][]func(int64))}
		nd.conns = append(nd.conns, c)
		s.wg.Go(c.receive)
	}
	c.mu.Lock()
	fns := c.topics[topic]
	c.topics[topic] = append(fns[:len(fns):len(fns)], fn)
	c.mu.Unlock()
	nd.mu.Unlock()
	if len(fns) > 0 {
		return nil
	}
	return c.ps.Subscribe(ctx, topic)
}

func (s *redisSystem) Publish(ctx context.Context, node int, topic string, data []byte) error {
	nd := s.nodes[node]
	nd.pipe.Publish(ctx, topic, append([]byte(nil), data...))
	if nd.pending++; nd.pending >= redisBatch {
		return s.Flush(ctx, node)
	}
	return nil
}

func (s *redisSystem) Flush(ctx context.Context, node int) error {
	nd := s.nodes[node]
	if nd.pending == 0 {
		return nil
	}
	nd.pending = 0
	_, err := nd.pipe.Exec(ctx)
	return err
}

func (s *redisSystem) Close() error {
	for _, nd := range s.nodes {
		nd.mu.Lock()
		for _, c := range nd.conns {
			_ = c.ps.Close()
		}
		nd.mu.Unlock()
	}
	s.wg.Wait()
	for _, c := range s.clients {
		_ = c.Close()
	}
	return s.proc.stop()
}

// redisProcess is a redis-server started by this program.
type redisProcess struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	done   chan struct{}
}

// startRedisProcess starts redis-server without persistence, listening
// only on a unix socket in a new temporary directory, and waits until it
// answers PING.
func startRedisProcess(ctx context.Context) (*redisProcess, error) {
	path := redisServerPath
	if path == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return nil, fmt.Errorf("%w: redis-server not found in PATH (apt-get install redis-server)", errUnavailable)
		}
		path = p
	}
	dir, err := os.MkdirTemp("", "ringcast-peers-redis-")
	if err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(path,
		"--port", "0", "--unixsocket", socket, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
		// Default pub/sub output limit (32 MB hard, 8 MB for 60 s) is kept.
	)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &redisProcess{cmd: cmd, dir: dir, socket: socket, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: socket, MaxRetries: -1})
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = poll(pctx, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		return c.Ping(pctx).Err() == nil
	})
	select {
	case <-p.done:
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("redis-server exited at start (see %s)", filepath.Join(dir, "redis.log"))
	default:
	}
	if err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("redis-server did not answer: %w", err)
	}
	return p, nil
}

// stop sends SIGTERM to the server's PID, kills it if it has not exited
// within five seconds, and removes its directory.
func (p *redisProcess) stop() error {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return os.RemoveAll(p.dir)
}
