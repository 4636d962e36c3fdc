package transport_test

import (
	"fmt"

	"github.com/ringcast/ringcast/transport"
)

// frameGreeting is a user frame type: the transport leaves its meaning to
// the program.
const frameGreeting = transport.FirstUserFrame

func Example() {
	got := make(chan string, 1)
	b, err := transport.New(transport.Config{
		NodeName: "b",
		Handler: transport.HandlerFunc(func(from string, typ transport.FrameType, body []byte) {
			if typ == frameGreeting {
				got <- fmt.Sprintf("greeting from %s: %q", from, body)
			}
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
	frame := transport.AppendFrame(nil, frameGreeting, []byte("hello"))
	if err := a.Send(transport.Peer{Name: "b", Addr: b.Addr()}, frame); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: greeting from a: "hello"
}
