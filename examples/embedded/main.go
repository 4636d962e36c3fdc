package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP address")
	join := flag.String("join", "", "gossip address of a node to join")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	cfg := pubsub.Config{Logger: log}
	if *join != "" {
		cfg.Seeds = []string{*join}
	}
	if err := run(ctx, ln, cfg, log); err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the application on ln until ctx is done, then shuts down.
func run(ctx context.Context, ln net.Listener, cfg pubsub.Config, log *slog.Logger) error {
	node, err := pubsub.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	gw := gateway.NewHandler(broker.New(node), &gateway.Options{Logger: log})

	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", gw) // Phoenix clients: new Socket("/socket")
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil || !json.Valid(body) {
			http.Error(w, "want a JSON order", http.StatusBadRequest)
			return
		}
		// ... store the order, then tell every client joined to "orders".
		data := gateway.EncodeEnvelope("created", body, false)
		if _, err := node.Publish(r.Context(), "orders", data); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "gossip", node.GossipAddr())

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	// Stop accepting, close WebSocket clients (http.Server does not close
	// upgraded connections), then hand the node's topics off and leave.
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(shutdown), gw.Shutdown(shutdown), node.Shutdown(shutdown))
}
