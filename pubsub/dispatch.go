package pubsub

import "sync"

// dispatcher runs the handlers of SubscribeFunc subscriptions on a fixed
// pool of workers, so that no user code runs on a link's read loop and no
// goroutine is needed per subscription. A subscription is queued at most
// once at a time (Subscription.scheduled), which keeps its messages in
// order; after a batch it goes to the back of the queue, which keeps one
// busy subscription from starving the others. It also finishes ended
// subscriptions of either kind off the delivery path.
type dispatcher struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*Subscription
	head   int
	closed bool
	wg     sync.WaitGroup
}

func newDispatcher(workers int) *dispatcher {
	d := &dispatcher{}
	d.cond = sync.NewCond(&d.mu)
	if workers < 1 {
		workers = 1
	}
	d.wg.Add(workers)
	for range workers {
		go d.work()
	}
	return d
}

func (d *dispatcher) enqueue(s *Subscription) {
	d.mu.Lock()
	if !d.closed {
		d.queue = append(d.queue, s)
		d.cond.Signal()
	}
	d.mu.Unlock()
}

// requeue puts back a subscription a worker has not finished with. Unlike
// enqueue it works while closing: the workers drain the queue before they
// stop, so every ended subscription is finished (detached, OnClose called).
func (d *dispatcher) requeue(s *Subscription) {
	d.mu.Lock()
	d.queue = append(d.queue, s)
	d.cond.Signal()
	d.mu.Unlock()
}

func (d *dispatcher) next() (*Subscription, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.head == len(d.queue) && !d.closed {
		d.cond.Wait()
	}
	if d.head == len(d.queue) {
		return nil, false
	}
	s := d.queue[d.head]
	d.queue[d.head] = nil
	d.head++
	if d.head == len(d.queue) {
		d.queue, d.head = d.queue[:0], 0
	} else if d.head > 1024 && d.head*2 > len(d.queue) {
		n := copy(d.queue, d.queue[d.head:])
		d.queue, d.head = d.queue[:n], 0
	}
	return s, true
}

func (d *dispatcher) work() {
	defer d.wg.Done()
	for {
		s, ok := d.next()
		if !ok {
			return
		}
		if s.dispatchBatch() {
			d.requeue(s)
		}
	}
}

// close stops the workers once the queue is drained and waits for them.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.cond.Broadcast()
	d.mu.Unlock()
	d.wg.Wait()
}
