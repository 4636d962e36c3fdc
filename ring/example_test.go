package ring_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ringcast/ringcast/ring"
)

func Example() {
	r, err := ring.New(ring.Config{NodeName: "node-a", PeerAddr: "127.0.0.1:7400"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	owner, err := r.Owner("chat:lobby")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(owner.Name, owner.PeerAddr, owner.HasRole(ring.RoleTopics))
	// Output: node-a 127.0.0.1:7400 true
}

func ExampleRing_Watch() {
	a, err := ring.New(ring.Config{NodeName: "a"}.FastTimings())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	gw, err := ring.New(ring.Config{NodeName: "gw", Roles: []string{ring.RoleGateway}}.FastTimings())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gw.Close()

	views, cancel := a.Watch()
	defer cancel()
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if _, err := gw.Join(ctx, a.GossipAddr()); err != nil {
		fmt.Println(err)
		return
	}
	for {
		select {
		case v := <-views:
			if v.Len() < 2 {
				continue
			}
			for _, m := range v.Members() {
				fmt.Println(m.Name, m.Roles)
			}
			owner, _ := v.Owner("chat:lobby")
			fmt.Println("owner:", owner.Name, "owners:", v.OwnerCount())
			return
		case <-ctx.Done():
			fmt.Println("timed out")
			return
		}
	}
	// Output:
	// a [topics]
	// gw [gateway]
	// owner: a owners: 1
}
