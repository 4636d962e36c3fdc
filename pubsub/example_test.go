package pubsub_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// Three nodes in one process: a subscriber on one, a publisher on another,
// whichever node owns the topic in between.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var nodes []*pubsub.Node
	for i := range 3 {
		cfg := pubsub.Config{NodeName: fmt.Sprintf("node-%d", i)}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].GossipAddr()}
		}
		n, err := pubsub.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	for len(nodes[2].Members()) < 3 || len(nodes[1].Members()) < 3 || len(nodes[0].Members()) < 3 {
		if ctx.Err() != nil {
			log.Fatal("gossip did not converge")
		}
		time.Sleep(10 * time.Millisecond) // wait until gossip has spread
	}

	sub, err := nodes[1].Subscribe(ctx, "news")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := nodes[2].Publish(ctx, "news", []byte("hello, ring")); err != nil {
		log.Fatal(err)
	}
	msg, err := sub.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s #%d: %s\n", msg.Topic, msg.Seq, msg.Data)
	// Output: news #1: hello, ring
}

// A Topic handle for a publisher that sends to one topic many times.
func ExampleNode_Topic() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := pubsub.New(pubsub.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	prices, err := node.Topic("prices")
	if err != nil {
		log.Fatal(err)
	}
	sub, err := node.Subscribe(ctx, prices.Name())
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []string{"101.5", "101.7"} {
		if _, err := prices.Publish(ctx, []byte(p)); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		msg, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s #%d: %s\n", msg.Topic, msg.Seq, msg.Data)
	}
	// Output:
	// prices #1: 101.5
	// prices #2: 101.7
}
