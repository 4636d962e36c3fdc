package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// A gateway on an in-memory broker, and a client speaking Phoenix Channels V2
// as websocat would: join, publish, and receive a server-side publication.
func Example() {
	broker := gateway.NewMemoryBroker()
	gw := gateway.NewHandler(broker, nil)
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", gw)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer gw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws://" + srv.Listener.Addr().String() + "/socket/websocket?vsn=2.0.0"
	c, _, err := cws.Dial(ctx, url, &cws.DialOptions{Subprotocols: []string{"phoenix"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	send := func(msg string) {
		if err := c.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
			fmt.Println(err)
		}
	}
	receive := func() {
		_, data, err := c.Read(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(data))
	}

	send(`["1","1","topics:matrix","phx_join",{}]`)
	receive()
	send(`["1","2","topics:matrix","publish",["event",{"message":"hi"}]]`)
	receive() // the reply
	receive() // the broadcast, to every client joined to the topic

	// A server-side publication, as the HTTP publish API makes it.
	data := gateway.EncodeEnvelope("news", []byte(`{"id":7}`), false)
	if _, err := broker.Publish(ctx, "topics:matrix", data); err != nil {
		fmt.Println(err)
	}
	receive()

	// Output:
	// ["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]
	// ["1","2","topics:matrix","phx_reply",{"status":"ok","response":{}}]
	// ["1",null,"topics:matrix","event",{"message":"hi"}]
	// ["1",null,"topics:matrix","news",{"id":7}]
}
