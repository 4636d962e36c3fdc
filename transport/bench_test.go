package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// frameOfSize returns a frameSeq frame of exactly size bytes.
func frameOfSize(tb testing.TB, size int) []byte {
	if size < testMsgSize {
		tb.Fatalf("no frame of %d bytes", size)
	}
	return seqFrame(1<<20, size-testMsgSize)
}

// benchLink starts a sender and a receiver that counts frames, and
// connects the link.
func benchLink(b *testing.B) (*Transport, Peer, *atomic.Int64) {
	var got atomic.Int64
	a := start(b, Config{NodeName: "a", Handler: HandlerFunc(func(string, FrameType, []byte) {})})
	r := start(b, Config{NodeName: "b", Handler: HandlerFunc(func(string, FrameType, []byte) { got.Add(1) })})
	to := peerOf(r)
	if err := a.SendMsg(to, &testMsg{typ: frameSeq}); err != nil {
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

// BenchmarkSend sends 128-byte frames over one loopback link and
// stops the clock when the receiver has them all.
func BenchmarkSend(b *testing.B) {
	a, to, got := benchLink(b)
	frame := frameOfSize(b, 128)
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
	frame := frameOfSize(b, 128)
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

// BenchmarkSealedFrames measures sealing a batch of frames and opening
// them one by one, the work a secret adds to a link.
func BenchmarkSealedFrames(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			d, l := fuzzSession(b)
			const batchFrames = 64
			var batch []byte
			for range batchFrames {
				batch = AppendFrame(batch, FirstUserFrame, make([]byte, size))
			}
			var sealed []byte
			r := bytes.NewReader(nil)
			br := bufio.NewReaderSize(r, 1<<20)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if sealed, err = d.seal.sealBatch(sealed[:0], batch); err != nil {
					b.Fatal(err)
				}
				r.Reset(sealed)
				br.Reset(r)
				for range batchFrames {
					if _, _, err := readFrame(br, 1<<20, l.open); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchFrames), "ns/frame")
		})
	}
}
