package wire

import "github.com/ringcast/ringcast/transport"

// TopicsRequest asks a member for the topics it owns whose names start
// with Prefix and sort after After, in name order, at most Limit of them.
type TopicsRequest struct {
	ReqID  uint64
	Prefix string
	After  string // "" = from the first name
	Limit  uint32
}

// Topics answers a TopicsRequest: the member's topics in name order. More
// says that the member holds further topics after the last one listed
// (beyond the limit, or beyond what one frame carries).
type Topics struct {
	ReqID  uint64
	Code   uint8 // 0 = ok
	Err    string
	More   bool
	Topics []TopicEntry
}

// TopicEntry describes one topic a member owns.
type TopicEntry struct {
	Name     string
	Epoch    uint64
	Seq      uint64
	Nodes    uint32 // subscriber nodes registered with the owner
	Retained uint32 // messages in the owner's in-memory history
	Durable  bool
	Claiming bool // the owner is taking the topic over (or handing it on)
}

// topicEntryMinSize is the smallest encoding of a TopicEntry: an array
// header and seven one-byte fields.
const topicEntryMinSize = 8

// topicEntryMaxOverhead bounds the encoding of a TopicEntry beyond its
// name.
const topicEntryMaxOverhead = 1 + maxHeaderSize + 4*maxUintSize + 2

// TopicEntrySize bounds the encoded size of a TopicEntry named name, so
// that a member can fill a reply up to a byte budget.
func TopicEntrySize(name string) int { return topicEntryMaxOverhead + len(name) }

// FrameType implements Message.
func (*TopicsRequest) FrameType() transport.FrameType { return FrameTopicsRequest }

// AppendBody implements Message.
func (m *TopicsRequest) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 4)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Prefix)
	b = appendStr(b, m.After)
	return appendUint(b, uint64(m.Limit))
}

// DecodeBody implements Message.
func (m *TopicsRequest) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(4)
	m.ReqID = d.uint()
	m.Prefix = d.str()
	m.After = d.str()
	m.Limit = d.uint32()
	d.finish(n, 4)
	return d.result("TopicsRequest")
}

func (m *TopicsRequest) maxBodySize() int {
	return 1 + 2*maxUintSize + 2*maxHeaderSize + len(m.Prefix) + len(m.After)
}

// FrameType implements Message.
func (*Topics) FrameType() transport.FrameType { return FrameTopics }

// AppendBody implements Message.
func (m *Topics) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 5)
	b = appendUint(b, m.ReqID)
	b = appendUint(b, uint64(m.Code))
	b = appendStr(b, m.Err)
	b = appendBool(b, m.More)
	if m.Topics == nil {
		return append(b, mpNil)
	}
	b = appendArrayHeader(b, len(m.Topics))
	for i := range m.Topics {
		e := &m.Topics[i]
		b = appendArrayHeader(b, 7)
		b = appendStr(b, e.Name)
		b = appendUint(b, e.Epoch)
		b = appendUint(b, e.Seq)
		b = appendUint(b, uint64(e.Nodes))
		b = appendUint(b, uint64(e.Retained))
		b = appendBool(b, e.Durable)
		b = appendBool(b, e.Claiming)
	}
	return b
}

// DecodeBody implements Message.
func (m *Topics) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(5)
	m.ReqID = d.uint()
	m.Code = d.uint8()
	m.Err = d.str()
	m.More = d.bool()
	m.Topics = d.topicEntries()
	d.finish(n, 5)
	if d.err != nil {
		m.Topics = nil
	}
	return d.result("Topics")
}

func (m *Topics) maxBodySize() int {
	n := 1 + 2*maxUintSize + 2*maxHeaderSize + len(m.Err) + 1
	for i := range m.Topics {
		n += TopicEntrySize(m.Topics[i].Name)
	}
	return n
}

// RequestID implements Reply.
func (m *Topics) RequestID() uint64 { return m.ReqID }

// topicEntries reads a list of TopicEntry; nil reads as a nil slice.
func (d *decoder) topicEntries() []TopicEntry {
	cnt, isNil := d.list(topicEntryMinSize)
	if d.err != nil || isNil {
		return nil
	}
	out := make([]TopicEntry, cnt)
	for i := range out {
		e := &out[i]
		fn := d.fields(7)
		e.Name = d.str()
		e.Epoch = d.uint()
		e.Seq = d.uint()
		e.Nodes = d.uint32()
		e.Retained = d.uint32()
		e.Durable = d.bool()
		e.Claiming = d.bool()
		if d.err != nil {
			return nil
		}
		d.skipN(fn-7, 1)
	}
	return out
}
