package pubsub

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ringcast/ringcast/transport"
)

// A full link queue reaches callers as pubsub's own sentinels.
func TestLinkErrorWrapsQueueFull(t *testing.T) {
	full := linkError(fmt.Errorf("peer b: %w", transport.ErrQueueFull))
	if !errors.Is(full, ErrQueueFull) || !errors.Is(full, ErrUnavailable) {
		t.Fatalf("queue full: %v, want ErrQueueFull and ErrUnavailable", full)
	}
	other := linkError(errors.New("link closed"))
	if errors.Is(other, ErrQueueFull) || !errors.Is(other, ErrUnavailable) {
		t.Fatalf("other error: %v, want ErrUnavailable alone", other)
	}
}
