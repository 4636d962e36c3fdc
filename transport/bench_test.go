package transport

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// deliverOfSize returns a Deliver frame of exactly size bytes.
func deliverOfSize(tb testing.TB, size int) []byte {
	for n := 0; n < size; n++ {
		f := EncodeFrame(&Deliver{Topic: "topics:bench", Epoch: 1, Seq: 1 << 20, Data: make([]byte, n)})
		if len(f) == size {
			return f
		}
	}
	tb.Fatalf("no Deliver frame of %d bytes", size)
	return nil
}

// benchLink starts a sender and a receiver that counts frames, and
// connects the link.
func benchLink(b *testing.B) (*Transport, Peer, *atomic.Int64) {
	var got atomic.Int64
	a := start(b, Config{NodeName: "a", Handler: HandlerFunc(func(string, FrameType, []byte) {})})
	r := start(b, Config{NodeName: "b", Handler: HandlerFunc(func(string, FrameType, []byte) { got.Add(1) })})
	to := peerOf(r)
	if err := a.SendMsg(to, &Deliver{Topic: "warmup"}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 5*time.Second, func() bool { return got.Load() == 1 })
	got.Store(0)
	return a, to, &got
}

// send retries on a full queue: the benchmark measures throughput with
// backpressure, not drops.
func send(b *testing.B, a *Transport, to Peer, frame []byte) {
	for {
		err := a.Send(to, frame)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrQueueFull) {
			b.Fatal(err)
		}
		runtime.Gosched()
	}
}

// BenchmarkSend sends 128-byte Deliver frames over one loopback link and
// stops the clock when the receiver has them all.
func BenchmarkSend(b *testing.B) {
	a, to, got := benchLink(b)
	frame := deliverOfSize(b, 128)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for i := 0; i < b.N; i++ {
		send(b, a, to, frame)
	}
	for got.Load() < int64(b.N) {
		runtime.Gosched()
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(linkTo(a, "b").writes.Load())/float64(b.N), "writes/frame")
}

// BenchmarkSendParallel is BenchmarkSend with GOMAXPROCS senders sharing
// the link.
func BenchmarkSendParallel(b *testing.B) {
	a, to, got := benchLink(b)
	frame := deliverOfSize(b, 128)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			send(b, a, to, frame)
		}
	})
	for got.Load() < int64(b.N) {
		runtime.Gosched()
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
}

func BenchmarkEncodeDeliver(b *testing.B) {
	m := &Deliver{Topic: "topics:bench", Epoch: 1, Seq: 1 << 20, Data: make([]byte, 100)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendFrame(buf[:0], m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeDeliver(b *testing.B) {
	body := (&Deliver{Topic: "topics:bench", Epoch: 1, Seq: 1 << 20, Data: make([]byte, 100)}).AppendBody(nil)
	var m Deliver
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := m.DecodeBody(body); err != nil {
			b.Fatal(err)
		}
	}
}
