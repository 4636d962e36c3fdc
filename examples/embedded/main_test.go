package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/pubsub"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEmbedded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, ln, pubsub.Config{NodeName: "app"}, slog.New(slog.DiscardHandler))
	}()
	base := ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer tcancel()
	ws, _, err := cws.Dial(tctx, "ws://"+base+"/socket/websocket?vsn=2.0.0", &cws.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.CloseNow()
	expect := func(want string) {
		t.Helper()
		_, data, err := ws.Read(tctx)
		if err != nil || string(data) != want {
			t.Fatalf("read %s, %v; want %s", data, err, want)
		}
	}
	if err := ws.Write(tctx, cws.MessageText, []byte(`["1","1","orders","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	expect(`["1","1","orders","phx_reply",{"status":"ok","response":{}}]`)

	resp, err := client.Post("http://"+base+"/orders", "application/json", strings.NewReader(`{"id":42}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders = %d", resp.StatusCode)
	}
	expect(`["1",null,"orders","created",{"id":42}]`)

	resp, err = client.Post("http://"+base+"/orders", "application/json", strings.NewReader(`not json`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST /orders with a bad body = %d, want 400", resp.StatusCode)
	}

	cancel()
	// The gateway closes the client with 1001 (going away).
	if _, _, err := ws.Read(tctx); cws.CloseStatus(err) != cws.StatusGoingAway {
		t.Fatalf("client read after shutdown = %v, want close 1001", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
