package wire

import "github.com/ringcast/ringcast/transport"

// This file holds the replication and history messages, and the history
// list encoding that State and Handoff share.

// Replicate copies one sequenced message from a topic's owner to a replica.
type Replicate struct {
	ReqID uint64 // non-zero: answer with a ReplicateAck
	Topic string
	Epoch uint64
	Seq   uint64
	Time  int64 // unix nanoseconds at the owner
	Data  []byte
}

// ReplicateAck tells the owner a replica holds a message.
type ReplicateAck struct {
	ReqID uint64
	Seq   uint64
}

// HistoryRequest asks a topic's owner for retained messages with
// After < Seq <= Until (Until 0: up to the newest), at most Limit of them
// (0: no limit beyond the frame size).
type HistoryRequest struct {
	ReqID uint64
	Topic string
	After uint64
	Until uint64
	Limit uint32
}

// History answers a HistoryRequest.
type History struct {
	ReqID   uint64
	Topic   string
	Code    uint8 // 0 = ok
	Err     string
	Epoch   uint64
	Seq     uint64 // the topic's current sequence number
	Oldest  uint64 // lowest sequence number still retained (Seq+1 when none)
	Entries []HistoryEntry
}

// HistoryEntry is one retained message of a topic.
type HistoryEntry struct {
	Seq  uint64
	Time int64 // unix nanoseconds at the owner
	Data []byte
}

// historyEntryMinSize is the smallest encoding of a HistoryEntry: an array
// header and three one-byte fields.
const historyEntryMinSize = 4

// appendHistory appends a list of history entries (nil as msgpack nil).
func appendHistory(b []byte, hist []HistoryEntry) []byte {
	if hist == nil {
		return append(b, mpNil)
	}
	b = appendArrayHeader(b, len(hist))
	for i := range hist {
		h := &hist[i]
		b = appendArrayHeader(b, 3)
		b = appendUint(b, h.Seq)
		b = appendInt(b, h.Time)
		b = appendBin(b, h.Data)
	}
	return b
}

// history decodes a list written by appendHistory.
func (d *decoder) history() []HistoryEntry {
	cnt, isNil := d.list(historyEntryMinSize)
	if d.err != nil || isNil {
		return nil
	}
	out := make([]HistoryEntry, cnt)
	for i := range out {
		h := &out[i]
		fn := d.fields(3)
		h.Seq = d.uint()
		h.Time = d.int()
		h.Data = d.bin()
		if d.err != nil {
			return nil
		}
		d.skipN(fn-3, 1)
	}
	return out
}

func historySize(hist []HistoryEntry) int {
	n := 0
	for i := range hist {
		n += 1 + 2*maxUintSize + maxHeaderSize + len(hist[i].Data)
	}
	return n
}

// FrameType implements Message.
func (*Replicate) FrameType() transport.FrameType { return FrameReplicate }

// AppendBody implements Message.
func (m *Replicate) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 6)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendInt(b, m.Time)
	return appendBin(b, m.Data)
}

// DecodeBody implements Message.
func (m *Replicate) DecodeBody(b []byte) error { return m.decode(b, "Replicate") }

// decode decodes the body of a Replicate, or of a ReplicaDeliver (which
// shares it), reporting errors for message name.
func (m *Replicate) decode(b []byte, name string) error {
	d := decoder{b: b}
	n := d.fields(6)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Time = d.int()
	m.Data = d.bin()
	d.finish(n, 6)
	return d.result(name)
}

func (m *Replicate) maxBodySize() int {
	return 1 + 4*maxUintSize + 2*maxHeaderSize + len(m.Topic) + len(m.Data)
}

// FrameType implements Message.
func (*ReplicateAck) FrameType() transport.FrameType { return FrameReplicateAck }

// AppendBody implements Message.
func (m *ReplicateAck) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 2)
	b = appendUint(b, m.ReqID)
	return appendUint(b, m.Seq)
}

// DecodeBody implements Message.
func (m *ReplicateAck) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(2)
	m.ReqID = d.uint()
	m.Seq = d.uint()
	d.finish(n, 2)
	return d.result("ReplicateAck")
}

func (m *ReplicateAck) maxBodySize() int { return 1 + 2*maxUintSize }

// FrameType implements Message.
func (*HistoryRequest) FrameType() transport.FrameType { return FrameHistoryRequest }

// AppendBody implements Message.
func (m *HistoryRequest) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 5)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.After)
	b = appendUint(b, m.Until)
	return appendUint(b, uint64(m.Limit))
}

// DecodeBody implements Message.
func (m *HistoryRequest) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(5)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.After = d.uint()
	m.Until = d.uint()
	limit := d.uint()
	if d.err == nil && limit > 1<<32-1 {
		d.failf("limit %d overflows uint32", limit)
	}
	m.Limit = uint32(limit)
	d.finish(n, 5)
	return d.result("HistoryRequest")
}

func (m *HistoryRequest) maxBodySize() int {
	return 1 + 4*maxUintSize + maxHeaderSize + len(m.Topic)
}

// FrameType implements Message.
func (*History) FrameType() transport.FrameType { return FrameHistory }

// AppendBody implements Message.
func (m *History) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 8)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendUint(b, uint64(m.Code))
	b = appendStr(b, m.Err)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendUint(b, m.Oldest)
	return appendHistory(b, m.Entries)
}

// DecodeBody implements Message.
func (m *History) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(8)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Code = d.uint8()
	m.Err = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Oldest = d.uint()
	m.Entries = d.history()
	d.finish(n, 8)
	if d.err != nil {
		m.Entries = nil
	}
	return d.result("History")
}

func (m *History) maxBodySize() int {
	return 1 + 5*maxUintSize + 3*maxHeaderSize + len(m.Topic) + len(m.Err) + historySize(m.Entries)
}
