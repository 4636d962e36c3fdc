package transport_test

import (
	"fmt"

	"github.com/ringcast/ringcast/transport"
)

func Example() {
	got := make(chan string, 1)
	b, err := transport.New(transport.Config{
		NodeName: "b",
		Handler: transport.HandlerFunc(func(from string, typ transport.FrameType, body []byte) {
			var d transport.Deliver
			if err := d.DecodeBody(body); err != nil {
				got <- err.Error()
				return
			}
			got <- fmt.Sprintf("%s from %s: %s #%d %q", typ, from, d.Topic, d.Seq, d.Data)
		}),
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	a, err := transport.New(transport.Config{
		NodeName: "a",
		Handler:  transport.HandlerFunc(func(string, transport.FrameType, []byte) {}),
	})
	if err != nil {
		panic(err)
	}
	defer a.Close()

	// Encode once; the same frame could go to many peers.
	frame := transport.EncodeFrame(&transport.Deliver{Topic: "news", Epoch: 1, Seq: 42, Data: []byte("hello")})
	if err := a.Send(transport.Peer{Name: "b", Addr: b.Addr()}, frame); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: Deliver from a: news #42 "hello"
}
