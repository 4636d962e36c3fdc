package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// Env is what a command's run function works with: the parsed command, its
// logger, and the signals that end it. It belongs to the goroutine running
// the run function; Log may be used from any goroutine.
type Env struct {
	// Log is the process logger (text or JSON on stderr). Its lines carry
	// the node's name ("node").
	Log *slog.Logger
	// nodeLog is Log without the node's name, for the node, which adds it
	// to its own lines (nil: Log).
	nodeLog *slog.Logger

	cmd     *Command
	signals <-chan os.Signal

	// store is what StartNode opened: the store beneath durable topics
	// (nil: none) and how the logs show it. closeStore closes it.
	store     pubsub.Store
	storeDesc string
	storeLoc  string // where the store is (see openedStore.loc)
}

// NeedsStore reports whether a node with roles owns topics, and so opens
// --store: a node with the gateway role only owns none and opens no store.
// No roles is pubsub's default, the topics role.
func NeedsStore(roles []string) bool {
	return len(roles) == 0 || slices.Contains(roles, pubsub.RoleTopics)
}

// StartNode opens the store (--store, unless the node owns no topics),
// starts the pubsub node the common flags describe, with roles, and joins
// --join. The caller shuts the node down, usually through Serve, which
// closes the store once the node has shut down. When StartNode fails, it
// has closed what it opened.
func (e *Env) StartNode(roles []string) (*pubsub.Node, error) {
	nodeLog := e.nodeLog
	if nodeLog == nil {
		nodeLog = e.Log
	}
	cfg := e.cmd.NodeConfig(roles, nodeLog)
	c := &e.cmd.Common
	notifying := e.cmd.notify.on(c.Store)
	if notifying {
		rules, err := notifyDurability(c.Durable)
		if err != nil {
			return nil, err
		}
		c.Durable = rules
	}
	switch {
	case !NeedsStore(roles) && !notifying:
		e.storeDesc = "none (gateway role only)"
	default:
		ctx, cancel := context.WithTimeout(context.Background(), c.StoreTimeout)
		start := time.Now()
		opened, err := openStore(ctx, c.Store, e.cmd.getenv, e.Log.With("store", c.Store.Kind))
		cancel()
		if err != nil {
			return nil, err
		}
		e.store, e.storeDesc, e.storeLoc = opened.st, opened.desc, opened.loc
		if opened.st != nil {
			cfg.Store = opened.st
			cfg.Durability = append([]pubsub.Durability{}, c.Durable...)
			cfg.StoreTimeout = c.StoreTimeout
			e.Log.Info("store opened", "store", e.storeDesc, "durable", pubsub.FormatDurability(c.Durable),
				"took", time.Since(start).Round(time.Millisecond))
		}
	}
	n, err := pubsub.New(cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start node: %w", err), e.closeStore())
	}
	return n, nil
}

// closeStore closes the store StartNode opened, once: after the node has
// shut down.
func (e *Env) closeStore() error {
	st := e.store
	e.store = nil
	if st == nil {
		return nil
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", e.storeDesc, err)
	}
	return nil
}

// Listen opens a TCP listener on addr. Its error reads
// "listen ADDR: CAUSE", for example "listen 127.0.0.1:4000: address already
// in use".
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cause := err
		var op *net.OpError
		if errors.As(cause, &op) && op.Err != nil {
			cause = op.Err
		}
		var sys *os.SyscallError
		if errors.As(cause, &sys) && sys.Err != nil {
			cause = sys.Err
		}
		return nil, fmt.Errorf("listen %s: %w", addr, cause)
	}
	return ln, nil
}

// HTTP server limits. Requests get a deadline for their header; the API
// sets deadlines for bodies itself, and WebSocket connections have their
// own once upgraded.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Server is an HTTP server on an open listener. Serve starts and stops it;
// it serves requests concurrently.
type Server struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// NewServer returns a Server that will serve h on ln. name is the attribute
// under which the ready line reports its address (for example "listen").
func NewServer(name string, ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	return &Server{
		name: name,
		ln:   ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.With("server", name).Handler(), slog.LevelWarn),
		},
	}
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// serve runs until the server is shut down (nil) or fails.
func (s *Server) serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s on %s: %w", s.name, s.Addr(), err)
	}
	return nil
}

// Service is what Serve runs and stops. Serve owns it from then on.
type Service struct {
	// Node is shut down last, once clients are gone: it hands its topics off
	// and leaves the cluster.
	Node *pubsub.Node
	// Servers are the HTTP servers; they stop accepting first.
	Servers []*Server
	// API, if set, answers /healthz with 503 from the first signal on.
	API *API
	// Drain runs, at the same time as the servers stop, what the servers do
	// not close themselves: a WebSocket gateway's Shutdown.
	Drain []func(context.Context) error
	// Close runs, in order, once the node has shut down and before the
	// store closes: what used the node (the notification system).
	Close []func() error
}

// Serve serves s until SIGINT or SIGTERM (or a server fails), then shuts it
// down within --shutdown-timeout: /healthz turns 503, the servers stop
// accepting and the Drain functions run (at once), then the node shuts
// down. A second signal cuts the shutdown short. Serve logs
// "<command> ready" once everything is serving, with the servers'
// addresses, the node's gossip and peer addresses and its name. It returns
// nil if it was stopped by a signal and shut down cleanly.
func (e *Env) Serve(s Service) error {
	errc := make(chan error, len(s.Servers))
	for _, srv := range s.Servers {
		go func() { errc <- srv.serve() }()
	}
	attrs := make([]any, 0, 2*len(s.Servers)+6)
	for _, srv := range s.Servers {
		attrs = append(attrs, srv.name, srv.Addr())
	}
	if s.Node != nil {
		attrs = append(attrs, "gossip", s.Node.GossipAddr(), "peer", s.Node.PeerAddr(), "name", s.Node.Name())
	}
	if e.storeDesc != "" {
		attrs = append(attrs, "store", e.storeDesc)
		if e.store != nil {
			attrs = append(attrs, "durable", pubsub.FormatDurability(e.cmd.Common.Durable))
		}
	}
	e.Log.Info(e.cmd.name+" ready", attrs...)

	running := len(s.Servers)
	var failed error
	select {
	case sig := <-e.signals:
		e.Log.Info("shutting down", "signal", sig.String(), "timeout", e.cmd.Common.ShutdownTimeout)
	case err := <-errc:
		running--
		failed = err
		e.Log.Error("server failed; shutting down", "err", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), e.cmd.Common.ShutdownTimeout)
	defer cancel()
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig := <-e.signals:
			e.Log.Warn("second signal: cutting the shutdown short", "signal", sig.String())
			cancel()
		case <-stop:
		}
	}()
	start := time.Now()
	err := e.shutdown(ctx, s)
	close(stop)
	<-watched
	for range running {
		if serr := <-errc; serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		e.Log.Error(e.cmd.name+" stopped with errors", "took", time.Since(start).Round(time.Millisecond), "err", err)
	} else {
		e.Log.Info(e.cmd.name+" stopped", "took", time.Since(start).Round(time.Millisecond))
	}
	return errors.Join(failed, err)
}

// shutdown stops s within ctx: servers and drains at once, then the node.
func (e *Env) shutdown(ctx context.Context, s Service) error {
	if s.API != nil {
		s.API.SetDraining()
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, srv := range s.Servers {
		wg.Go(func() {
			if err := srv.srv.Shutdown(ctx); err != nil {
				_ = srv.srv.Close()
				fail(fmt.Errorf("stop %s server: %w", srv.name, err))
			}
		})
	}
	for _, drain := range s.Drain {
		wg.Go(func() {
			if err := drain(ctx); err != nil {
				fail(fmt.Errorf("close clients: %w", err))
			}
		})
	}
	wg.Wait()
	if s.Node != nil {
		if err := s.Node.Shutdown(ctx); err != nil {
			fail(fmt.Errorf("node shutdown: %w", err))
		}
	}
	for _, close := range s.Close {
		if err := close(); err != nil {
			fail(err)
		}
	}
	// The node no longer writes: what it acknowledged is committed.
	if err := e.closeStore(); err != nil {
		fail(err)
	}
	return errors.Join(errs...)
}
