package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/ringcast/ringcast/bench"
)

// natsSystem is a NATS cluster embedded in this process: n servers on
// 127.0.0.1 with random ports, connected by routes, and one client
// connection per server. Every subscriber is a subscription of its node's
// connection, so the server sends one copy of a message per subscriber.
type natsSystem struct {
	servers []*server.Server
	conns   []*nats.Conn
}

func startNATS(ctx context.Context, n int) (System, error) {
	s := &natsSystem{}
	var seed *url.URL
	for i := range n {
		opts := &server.Options{
			ServerName: "nats-" + strconv.Itoa(i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: server.RANDOM_PORT}
			if seed != nil {
				opts.Routes = []*url.URL{seed}
			}
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.servers = append(s.servers, srv)
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			_ = s.Close()
			return nil, fmt.Errorf("nats server %d did not start", i)
		}
		if n > 1 && seed == nil {
			addr := srv.ClusterAddr()
			seed = &url.URL{Scheme: "nats-route", Host: addr.String()}
		}
	}
	err := poll(ctx, func() bool {
		for _, srv := range s.servers {
			if srv.NumRoutes() < n-1 {
				return false
			}
		}
		return true
	})
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("nats routes did not form: %w", err)
	}
	for i, srv := range s.servers {
		nc, err := nats.Connect(srv.ClientURL(), nats.Name("bench-"+strconv.Itoa(i)), nats.MaxReconnects(0))
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.conns = append(s.conns, nc)
	}
	return s, nil
}

func (s *natsSystem) Name() string { return "nats" }

func (s *natsSystem) Subscribe(ctx context.Context, node int, topic string, fn func(int64)) error {
	nc := s.conns[node]
	if _, err := nc.Subscribe(topic, func(m *nats.Msg) { fn(bench.SentAt(m.Data)) }); err != nil {
		return err
	}
	return nil
}

func (s *natsSystem) Publish(_ context.Context, node int, topic string, data []byte) error {
	return s.conns[node].Publish(topic, data)
}

func (s *natsSystem) Flush(context.Context, int) error { return nil }

func (s *natsSystem) Close() error {
	for _, nc := range s.conns {
		nc.Close()
	}
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Go(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
	}
	wg.Wait()
	return nil
}
