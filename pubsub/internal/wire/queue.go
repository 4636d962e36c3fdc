package wire

import "github.com/ringcast/ringcast/transport"

// Frame types of the queue-group messages (protocol version 5). The values
// 48 to 55 are reserved for them.
const (
	FrameQueueJoin    transport.FrameType = 48 // QueueJoin
	FrameQueueJoinAck transport.FrameType = 49 // QueueJoinAck
	FrameQueueLeave   transport.FrameType = 50 // QueueLeave
	FrameQueueDeliver transport.FrameType = 51 // QueueDeliver
	FrameQueueAck     transport.FrameType = 52 // QueueAck
)

// QueueJoin tells a topic's owner that the sending node has live members
// of a queue group of the topic. It is sent when the node's first member
// of the group arrives (with a ReqID, answered by a QueueJoinAck), and
// again, without ReqID, after the ring changed and at every refresh, so
// that a new owner learns the group and an owner that lost the entry gets
// it back.
type QueueJoin struct {
	ReqID  uint64 // 0 = no answer wanted
	Topic  string
	Group  string
	Origin string // node that has the members ("" = the sender)
	Hops   uint8  // forwards so far
}

// QueueJoinAck answers a QueueJoin with a non-zero ReqID.
type QueueJoinAck struct {
	ReqID uint64
	Code  uint8 // 0 = ok
	Err   string
}

// QueueLeave tells a topic's owner that the sending node has no member of
// a queue group left.
type QueueLeave struct {
	Topic  string
	Group  string
	Origin string // node that had the members ("" = the sender)
	Hops   uint8  // forwards so far
}

// QueueDeliver carries one sequenced message from a topic's owner to the
// one node of a queue group it chose for it; that node hands it to one of
// its members. Acked asks the node to answer with a QueueAck once a member
// has acknowledged it (durable topics); without it nothing is answered.
type QueueDeliver struct {
	Topic string
	Group string
	Epoch uint64
	Seq   uint64
	Data  []byte
	Acked bool
}

// QueueAck tells a topic's owner that a member of a queue group has
// acknowledged the message Seq of Epoch.
type QueueAck struct {
	Topic string
	Group string
	Epoch uint64
	Seq   uint64
}

// RequestID implements Reply.
func (m *QueueJoinAck) RequestID() uint64 { return m.ReqID }

// newQueueMessage is New for the queue-group messages.
func newQueueMessage(t transport.FrameType) Message {
	switch t {
	case FrameQueueJoin:
		return new(QueueJoin)
	case FrameQueueJoinAck:
		return new(QueueJoinAck)
	case FrameQueueLeave:
		return new(QueueLeave)
	case FrameQueueDeliver:
		return new(QueueDeliver)
	case FrameQueueAck:
		return new(QueueAck)
	}
	return newPresenceMessage(t)
}

// FrameType implements Message.
func (*QueueJoin) FrameType() transport.FrameType { return FrameQueueJoin }

// AppendBody implements Message.
func (m *QueueJoin) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 5)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Group)
	b = appendStr(b, m.Origin)
	return appendUint(b, uint64(m.Hops))
}

// DecodeBody implements Message.
func (m *QueueJoin) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(5)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Group = d.str()
	m.Origin = d.str()
	m.Hops = d.uint8()
	d.finish(n, 5)
	return d.result("QueueJoin")
}

func (m *QueueJoin) maxBodySize() int {
	return 1 + 2*maxUintSize + 3*maxHeaderSize + len(m.Topic) + len(m.Group) + len(m.Origin)
}

// FrameType implements Message.
func (*QueueJoinAck) FrameType() transport.FrameType { return FrameQueueJoinAck }

// AppendBody implements Message.
func (m *QueueJoinAck) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 3)
	b = appendUint(b, m.ReqID)
	b = appendUint(b, uint64(m.Code))
	return appendStr(b, m.Err)
}

// DecodeBody implements Message.
func (m *QueueJoinAck) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(3)
	m.ReqID = d.uint()
	m.Code = d.uint8()
	m.Err = d.str()
	d.finish(n, 3)
	return d.result("QueueJoinAck")
}

func (m *QueueJoinAck) maxBodySize() int {
	return 1 + 2*maxUintSize + maxHeaderSize + len(m.Err)
}

// FrameType implements Message.
func (*QueueLeave) FrameType() transport.FrameType { return FrameQueueLeave }

// AppendBody implements Message.
func (m *QueueLeave) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 4)
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Group)
	b = appendStr(b, m.Origin)
	return appendUint(b, uint64(m.Hops))
}

// DecodeBody implements Message.
func (m *QueueLeave) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(4)
	m.Topic = d.str()
	m.Group = d.str()
	m.Origin = d.str()
	m.Hops = d.uint8()
	d.finish(n, 4)
	return d.result("QueueLeave")
}

func (m *QueueLeave) maxBodySize() int {
	return 1 + maxUintSize + 3*maxHeaderSize + len(m.Topic) + len(m.Group) + len(m.Origin)
}

// FrameType implements Message.
func (*QueueDeliver) FrameType() transport.FrameType { return FrameQueueDeliver }

// AppendBody implements Message.
func (m *QueueDeliver) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 6)
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Group)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendBin(b, m.Data)
	return appendBool(b, m.Acked)
}

// DecodeBody implements Message.
func (m *QueueDeliver) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(6)
	m.Topic = d.str()
	m.Group = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Data = d.bin()
	m.Acked = d.bool()
	d.finish(n, 6)
	return d.result("QueueDeliver")
}

func (m *QueueDeliver) maxBodySize() int {
	return 1 + 2*maxUintSize + 3*maxHeaderSize + 1 + len(m.Topic) + len(m.Group) + len(m.Data)
}

// AppendFrame appends a complete QueueDeliver frame to dst; see
// Deliver.AppendFrame.
func (m *QueueDeliver) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return transport.EndFrame(m.AppendBody(transport.BeginFrame(dst, FrameQueueDeliver)), start)
}

// FrameType implements Message.
func (*QueueAck) FrameType() transport.FrameType { return FrameQueueAck }

// AppendBody implements Message.
func (m *QueueAck) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 4)
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Group)
	b = appendUint(b, m.Epoch)
	return appendUint(b, m.Seq)
}

// DecodeBody implements Message.
func (m *QueueAck) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(4)
	m.Topic = d.str()
	m.Group = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	d.finish(n, 4)
	return d.result("QueueAck")
}

func (m *QueueAck) maxBodySize() int {
	return 1 + 2*maxUintSize + 2*maxHeaderSize + len(m.Topic) + len(m.Group)
}
