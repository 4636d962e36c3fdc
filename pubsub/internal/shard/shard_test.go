package shard

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMap(t *testing.T) {
	m := New[int, struct{}]()
	one, two := 1, 2
	if v, added := m.GetOrAdd("a", func() *int { return &one }); !added || v != &one {
		t.Fatalf("first GetOrAdd = %v, %v", v, added)
	}
	if v, added := m.GetOrAdd("a", func() *int { return &two }); added || v != &one {
		t.Fatalf("second GetOrAdd = %v, %v", v, added)
	}
	if m.Delete("a", &two) {
		t.Fatal("Delete with another value removed the key")
	}
	if m.Get("a") != &one || m.Len() != 1 {
		t.Fatal("key lost")
	}
	if !m.Delete("a", nil) || m.Get("a") != nil || m.Len() != 0 {
		t.Fatal("Delete(nil) kept the key")
	}
}

func TestMapConcurrent(t *testing.T) {
	m := New[int, int]()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				k := fmt.Sprint(g, "-", i)
				v := i
				m.GetOrAdd(k, func() *int { return &v })
				sh := m.Shard(k)
				sh.Lock()
				sh.Local++
				sh.Unlock()
			}
		})
	}
	wg.Wait()
	if m.Len() != 2000 || len(m.Values()) != 2000 {
		t.Fatalf("Len = %d, Values = %d, want 2000", m.Len(), len(m.Values()))
	}
	keys := m.Keys()
	slices.Sort(keys)
	if len(slices.Compact(keys)) != 2000 {
		t.Fatal("duplicate keys")
	}
	total := 0
	for i := range m.shards {
		total += m.shards[i].Local
	}
	if total != 2000 {
		t.Fatalf("per-shard state counted %d, want 2000", total)
	}
}
