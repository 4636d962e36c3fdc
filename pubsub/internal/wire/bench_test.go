package wire

import (
	"testing"

	"github.com/ringcast/ringcast/transport"
)

func BenchmarkEncodeDeliver(b *testing.B) {
	m := &Deliver{Topic: "topics:bench", Epoch: 1, Seq: 1 << 20, Data: make([]byte, 100)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = transport.AppendMessage(buf[:0], m)
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
