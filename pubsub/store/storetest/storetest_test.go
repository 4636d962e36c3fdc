package storetest_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memDB is a database in memory that several memStore handles share: the
// suite's own reference implementation of the contract.
type memDB struct {
	mu     sync.Mutex
	topics map[string]*memTopic
}

type memTopic struct {
	head  store.TopicHead
	token uint64
	msgs  []store.Message // ascending Seq, possibly trimmed at the front or by age
}

type memStore struct {
	db     *memDB
	mu     sync.Mutex
	closed bool
}

func (s *memStore) check(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return nil
}

func (s *memStore) Claim(ctx context.Context, topic, owner string, epoch uint64) (store.Lease, error) {
	if err := s.check(ctx); err != nil {
		return store.Lease{}, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	tp := s.db.topics[topic]
	if tp == nil {
		tp = &memTopic{head: store.TopicHead{Name: topic, Epoch: epoch}}
		s.db.topics[topic] = tp
	}
	tp.token++
	tp.head.Owner = owner
	return store.Lease{Epoch: tp.head.Epoch, Seq: tp.head.Seq, Token: tp.token}, nil
}

func (s *memStore) Append(ctx context.Context, batch []store.Append) ([]error, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	for _, a := range batch {
		if len(a.Messages) == 0 {
			return nil, fmt.Errorf("memstore: append to %q has no messages", a.Topic)
		}
		for i := 1; i < len(a.Messages); i++ {
			if a.Messages[i].Seq != a.Messages[i-1].Seq+1 {
				return nil, fmt.Errorf("memstore: append to %q: sequence numbers not consecutive", a.Topic)
			}
		}
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	res := make([]error, len(batch))
	for i, a := range batch {
		tp := s.db.topics[a.Topic]
		if tp == nil || tp.token != a.Token || tp.head.Seq+1 != a.Messages[0].Seq {
			res[i] = fmt.Errorf("%w: %q", store.ErrFenced, a.Topic)
			continue
		}
		for _, m := range a.Messages {
			m.Data = slices.Clone(m.Data)
			tp.msgs = append(tp.msgs, m)
		}
		tp.head.Seq = a.Messages[len(a.Messages)-1].Seq
	}
	return res, nil
}

func (s *memStore) Read(ctx context.Context, topic string, after uint64, limit, maxBytes int) ([]store.Message, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	tp := s.db.topics[topic]
	if tp == nil {
		return nil, nil
	}
	var out []store.Message
	size := 0
	for _, m := range tp.msgs {
		if m.Seq <= after {
			continue
		}
		if len(out) == limit || (len(out) > 0 && size+len(m.Data) > maxBytes) {
			break
		}
		size += len(m.Data)
		m.Data = slices.Clone(m.Data)
		out = append(out, m)
	}
	return out, nil
}

func (s *memStore) Trim(ctx context.Context, topic string, throughSeq uint64, before int64) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	tp := s.db.topics[topic]
	if tp == nil {
		return 0, nil
	}
	n := len(tp.msgs)
	tp.msgs = slices.DeleteFunc(tp.msgs, func(m store.Message) bool {
		return m.Seq <= throughSeq || (before != 0 && m.Time < before)
	})
	return int64(n - len(tp.msgs)), nil
}

func (s *memStore) Topics(ctx context.Context, after string, limit int) ([]store.TopicHead, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	var out []store.TopicHead
	for name, tp := range s.db.topics {
		if name > after {
			out = append(out, tp.head)
		}
	}
	slices.SortFunc(out, func(a, b store.TopicHead) int { return cmp.Compare(a.Name, b.Name) })
	return out[:min(limit, len(out))], nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func newMemDB() *memDB { return &memDB{topics: map[string]*memTopic{}} }

// TestReference runs the suite against the in-memory reference store, so
// that a change to the suite is checked against the contract before any
// database is involved.
func TestReference(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return &memStore{db: newMemDB()}
	})
}

func TestReferenceShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		db := newMemDB()
		return &memStore{db: db}, &memStore{db: db}
	})
}
