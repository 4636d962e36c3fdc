package pubsub_test

import (
	"context"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// Two workers share a topic's jobs: each job goes to one of them, while a
// plain subscriber (an audit log) sees every job.
func ExampleNode_SubscribeQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := pubsub.New(pubsub.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	var (
		mu   sync.Mutex
		done []string
		wg   sync.WaitGroup
	)
	wg.Add(4)
	for w := range 2 {
		_, err := node.SubscribeQueueFunc(ctx, "jobs", "workers", func(m pubsub.Message) {
			mu.Lock()
			done = append(done, fmt.Sprintf("worker %d: %s", w, m.Data))
			mu.Unlock()
			wg.Done()
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	audit, err := node.Subscribe(ctx, "jobs")
	if err != nil {
		log.Fatal(err)
	}
	for _, job := range []string{"resize a.png", "resize b.png", "resize c.png", "resize d.png"} {
		if _, err := node.Publish(ctx, "jobs", []byte(job)); err != nil {
			log.Fatal(err)
		}
	}
	wg.Wait()
	for range 4 {
		m, err := audit.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("audit: %s\n", m.Data)
	}
	sort.Strings(done)
	for _, d := range done {
		fmt.Println(d)
	}
	// Output:
	// audit: resize a.png
	// audit: resize b.png
	// audit: resize c.png
	// audit: resize d.png
	// worker 0: resize a.png
	// worker 0: resize c.png
	// worker 1: resize b.png
	// worker 1: resize d.png
}
