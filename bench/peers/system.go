package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ringcast/ringcast/bench"
	"github.com/ringcast/ringcast/pubsub"
)

// System is one pub/sub system under comparison, running as a cluster of
// nodes on this machine. A node is where subscribers and publishers
// attach: a ringcast Node, a NATS server (with one client connection per
// node), or one client connection to the Redis server.
type System interface {
	// Name identifies the system in results.
	Name() string
	// Subscribe attaches one subscriber of topic to node. fn gets the send
	// time of each message (0 for probes); it is called sequentially for
	// one subscriber, concurrently for different ones, and must not block.
	// The subscription may become live cluster-wide only later: workloads
	// probe before they measure.
	Subscribe(ctx context.Context, node int, topic string, fn func(sent int64)) error
	// Publish sends data from node without waiting for its delivery. data
	// may be reused once Publish returns.
	Publish(ctx context.Context, node int, topic string, data []byte) error
	// Flush sends whatever Publish buffered on node.
	Flush(ctx context.Context, node int) error
	// Close stops the system and everything it started.
	Close() error
}

// factory starts a system of n nodes.
type factory struct {
	name  string
	start func(ctx context.Context, n int) (System, error)
}

// errUnavailable is returned by a factory whose system cannot run here
// (redis-server not installed).
var errUnavailable = errors.New("peers: system unavailable")

// ringcastSystem is ringcast: n in-process nodes on 127.0.0.1 with fast
// gossip; publishes use AckNone.
type ringcastSystem struct {
	name  string
	nodes []*pubsub.Node
	mu    sync.Mutex
	subs  []*pubsub.Subscription
}

// startRingcast runs ringcast as shipped: every topic's owner keeps 256
// messages of history and replicates each message to one more node
// (ReplicationFactor 2), which NATS core and Redis pub/sub do not do.
func startRingcast(ctx context.Context, n int) (System, error) {
	return startRingcastWith(ctx, "ringcast", n, 0)
}

// startRingcastR1 runs ringcast with ReplicationFactor 1: history at the
// owner only, no copy on a second node, so a message is not kept through
// its owner's failure — the delivery semantics NATS core and Redis pub/sub
// offer. It shows what replication costs.
func startRingcastR1(ctx context.Context, n int) (System, error) {
	return startRingcastWith(ctx, "ringcast-r1", n, 1)
}

func startRingcastWith(ctx context.Context, name string, n, replication int) (System, error) {
	s := &ringcastSystem{name: name}
	for i := range n {
		cfg := pubsub.Config{NodeName: "n" + strconv.Itoa(i), Gossip: benchGossip(), ReplicationFactor: replication}
		if i > 0 {
			cfg.Seeds = []string{s.nodes[0].GossipAddr()}
		}
		nd, err := pubsub.New(cfg)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.nodes = append(s.nodes, nd)
	}
	err := poll(ctx, func() bool {
		for _, nd := range s.nodes {
			if len(nd.Members()) != n {
				return false
			}
		}
		return true
	})
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("ringcast cluster did not converge: %w", err)
	}
	return s, nil
}

func (s *ringcastSystem) Name() string { return s.name }

func (s *ringcastSystem) Subscribe(ctx context.Context, node int, topic string, fn func(int64)) error {
	sub, err := s.nodes[node].SubscribeFunc(ctx, topic, func(m pubsub.Message) { fn(bench.SentAt(m.Data)) })
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return nil
}

// Publish retries, after a short pause, while the link toward the owner is
// full (pubsub.ErrQueueFull): back-pressure, as a NATS client's
// buffered writer and Redis's pipeline round trips give their publishers.
func (s *ringcastSystem) Publish(ctx context.Context, node int, topic string, data []byte) error {
	for {
		_, err := s.nodes[node].Publish(ctx, topic, data, pubsub.WithAck(pubsub.AckNone))
		if err == nil || !errors.Is(err, pubsub.ErrQueueFull) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Microsecond):
		}
	}
}

// benchGossip is pubsub.FastGossip with a failure detector that tolerates
// saturated CPUs: FastGossip's 100 ms probe timeout declares busy nodes dead
// while a run keeps both cores busy, and these runs measure throughput,
// not failure detection.
func benchGossip() pubsub.GossipConfig {
	g := pubsub.FastGossip()
	g.ProbeInterval = time.Second
	g.ProbeTimeout = 500 * time.Millisecond
	g.SuspicionMult = 5
	return g
}

func (s *ringcastSystem) Flush(context.Context, int) error { return nil }

func (s *ringcastSystem) Close() error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	var wg sync.WaitGroup
	for _, nd := range s.nodes {
		wg.Go(func() { _ = nd.Close() })
	}
	wg.Wait()
	return nil
}

// poll calls cond every few milliseconds until it holds or ctx ends.
func poll(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
