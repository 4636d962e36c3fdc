package pubsub_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// Presence on the topics of the "rooms" namespace: who is in a room,
// and who comes and goes.
func ExampleNode_WatchPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := pubsub.New(pubsub.Config{Presence: []pubsub.PresenceRule{{Pattern: "rooms:*", MaxMetasPerKey: 10}}})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	w, err := n.WatchPresence(ctx, "rooms:lobby")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	d, _ := w.Next(ctx) // the whole set first
	fmt.Println("sync:", d.Sync, "members:", d.Joins.Len())

	alice, err := n.Track(ctx, "rooms:lobby", "alice", []byte(`{"device":"laptop"}`))
	if err != nil {
		log.Fatal(err)
	}
	d, _ = w.Next(ctx)
	fmt.Println("joined:", string(d.Joins["alice"][0].Data))

	// A subscriber can be present for as long as it is subscribed.
	sub, err := n.Subscribe(ctx, "rooms:lobby", pubsub.WithPresence("bob", nil))
	if err != nil {
		log.Fatal(err)
	}
	d, _ = w.Next(ctx)
	fmt.Println("joined:", len(d.Joins["bob"]), "bob")

	alice.Untrack()
	d, _ = w.Next(ctx)
	fmt.Println("left:", len(d.Leaves["alice"]), "alice")

	p, _ := n.Presence(ctx, "rooms:lobby")
	fmt.Println("present:", len(p), "key,", p.Len(), "meta")
	_ = sub.Unsubscribe()
	// Output:
	// sync: true members: 0
	// joined: {"device":"laptop"}
	// joined: 1 bob
	// left: 1 alice
	// present: 1 key, 1 meta
}
