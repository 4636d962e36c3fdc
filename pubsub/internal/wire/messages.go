package wire

import "github.com/ringcast/ringcast/transport"

// Publish asks a topic's owner to sequence and fan out a message.
type Publish struct {
	ReqID  uint64 // 0 = no acknowledgement wanted
	Origin string // node that should receive the PublishAck ("" = the sender)
	Topic  string
	Data   []byte
	Ack    uint8 // acknowledgement level requested (package pubsub's constants)
	Hops   uint8 // forwards so far (package pubsub limits it)
}

// PublishAck answers a Publish with a non-zero ReqID.
type PublishAck struct {
	ReqID uint64
	Epoch uint64
	Seq   uint64
	Code  uint8 // 0 = ok
	Err   string
}

// Deliver carries one sequenced message from a topic's owner to a node
// with subscribers.
type Deliver struct {
	Topic string
	Epoch uint64
	Seq   uint64
	Data  []byte
}

// ReplicaDeliver carries one sequenced message from a topic's owner to a
// node that both has subscribers and is one of the topic's replicas: it
// stands for the Deliver and the Replicate the owner would otherwise send
// that node, so that the payload crosses the link once instead of twice.
// The node keeps a copy, acknowledged with a ReplicateAck when ReqID is
// not zero, and delivers it. Its fields, and its body, are Replicate's.
type ReplicaDeliver struct {
	ReqID uint64 // non-zero: answer with a ReplicateAck
	Topic string
	Epoch uint64
	Seq   uint64
	Time  int64 // unix nanoseconds at the owner
	Data  []byte
}

// Subscribe registers the sending node's interest in a topic with its
// owner.
type Subscribe struct {
	ReqID    uint64
	Topic    string
	Since    uint64 // last sequence number seen, if HasSince
	HasSince bool
	Origin   string // node to register and answer ("" = the sender)
	Hops     uint8  // forwards so far
}

// SubscribeAck answers a Subscribe.
type SubscribeAck struct {
	ReqID uint64
	Epoch uint64
	Seq   uint64
	Code  uint8 // 0 = ok
	Err   string
}

// Unsubscribe withdraws the sending node's interest in a topic.
type Unsubscribe struct {
	Topic  string
	Origin string // node to unregister ("" = the sender)
	Hops   uint8  // forwards so far
}

// FrameType implements Message.
func (*Publish) FrameType() transport.FrameType { return FramePublish }

// AppendBody implements Message.
func (m *Publish) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 6)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Origin)
	b = appendStr(b, m.Topic)
	b = appendBin(b, m.Data)
	b = appendUint(b, uint64(m.Ack))
	return appendUint(b, uint64(m.Hops))
}

// DecodeBody implements Message.
func (m *Publish) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(6)
	m.ReqID = d.uint()
	m.Origin = d.str()
	m.Topic = d.str()
	m.Data = d.bin()
	m.Ack = d.uint8()
	m.Hops = d.uint8()
	d.finish(n, 6)
	return d.result("Publish")
}

func (m *Publish) maxBodySize() int {
	return 1 + 3*maxUintSize + 3*maxHeaderSize + len(m.Origin) + len(m.Topic) + len(m.Data)
}

// FrameType implements Message.
func (*PublishAck) FrameType() transport.FrameType { return FramePublishAck }

// AppendBody implements Message.
func (m *PublishAck) AppendBody(b []byte) []byte {
	return appendAck(b, m.ReqID, m.Epoch, m.Seq, m.Code, m.Err)
}

// DecodeBody implements Message.
func (m *PublishAck) DecodeBody(b []byte) error {
	return decodeAck(b, "PublishAck", &m.ReqID, &m.Epoch, &m.Seq, &m.Code, &m.Err)
}

func (m *PublishAck) maxBodySize() int {
	return 1 + 4*maxUintSize + maxHeaderSize + len(m.Err)
}

// FrameType implements Message.
func (*Deliver) FrameType() transport.FrameType { return FrameDeliver }

// AppendBody implements Message.
func (m *Deliver) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 4)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	return appendBin(b, m.Data)
}

// DecodeBody implements Message.
func (m *Deliver) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(4)
	m.Topic = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Data = d.bin()
	d.finish(n, 4)
	return d.result("Deliver")
}

func (m *Deliver) maxBodySize() int {
	return 1 + 2*maxUintSize + 2*maxHeaderSize + len(m.Topic) + len(m.Data)
}

// FrameType implements Message.
func (*ReplicaDeliver) FrameType() transport.FrameType { return FrameReplicaDeliver }

// AppendBody implements Message.
func (m *ReplicaDeliver) AppendBody(b []byte) []byte {
	return (*Replicate)(m).AppendBody(b)
}

// DecodeBody implements Message.
func (m *ReplicaDeliver) DecodeBody(b []byte) error {
	return (*Replicate)(m).decode(b, "ReplicaDeliver")
}

func (m *ReplicaDeliver) maxBodySize() int { return (*Replicate)(m).maxBodySize() }

// FrameType implements Message.
func (*Subscribe) FrameType() transport.FrameType { return FrameSubscribe }

// AppendBody implements Message.
func (m *Subscribe) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 6)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Since)
	b = appendBool(b, m.HasSince)
	b = appendStr(b, m.Origin)
	return appendUint(b, uint64(m.Hops))
}

// DecodeBody implements Message.
func (m *Subscribe) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(6)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Since = d.uint()
	m.HasSince = d.bool()
	m.Origin = d.str()
	m.Hops = d.uint8()
	d.finish(n, 6)
	return d.result("Subscribe")
}

func (m *Subscribe) maxBodySize() int {
	return 1 + 3*maxUintSize + 2*maxHeaderSize + len(m.Topic) + len(m.Origin) + 1
}

// FrameType implements Message.
func (*SubscribeAck) FrameType() transport.FrameType { return FrameSubscribeAck }

// AppendBody implements Message.
func (m *SubscribeAck) AppendBody(b []byte) []byte {
	return appendAck(b, m.ReqID, m.Epoch, m.Seq, m.Code, m.Err)
}

// DecodeBody implements Message.
func (m *SubscribeAck) DecodeBody(b []byte) error {
	return decodeAck(b, "SubscribeAck", &m.ReqID, &m.Epoch, &m.Seq, &m.Code, &m.Err)
}

func (m *SubscribeAck) maxBodySize() int {
	return 1 + 4*maxUintSize + maxHeaderSize + len(m.Err)
}

// FrameType implements Message.
func (*Unsubscribe) FrameType() transport.FrameType { return FrameUnsubscribe }

// AppendBody implements Message.
func (m *Unsubscribe) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 3)
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Origin)
	return appendUint(b, uint64(m.Hops))
}

// DecodeBody implements Message.
func (m *Unsubscribe) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(3)
	m.Topic = d.str()
	m.Origin = d.str()
	m.Hops = d.uint8()
	d.finish(n, 3)
	return d.result("Unsubscribe")
}

func (m *Unsubscribe) maxBodySize() int {
	return 1 + maxUintSize + 2*maxHeaderSize + len(m.Topic) + len(m.Origin)
}

// PublishAck and SubscribeAck share one body: [ReqID, Epoch, Seq, Code, Err].

func appendAck(b []byte, reqID, epoch, seq uint64, code uint8, err string) []byte {
	b = appendArrayHeader(b, 5)
	b = appendUint(b, reqID)
	b = appendUint(b, epoch)
	b = appendUint(b, seq)
	b = appendUint(b, uint64(code))
	return appendStr(b, err)
}

func decodeAck(b []byte, name string, reqID, epoch, seq *uint64, code *uint8, err *string) error {
	d := decoder{b: b}
	n := d.fields(5)
	*reqID = d.uint()
	*epoch = d.uint()
	*seq = d.uint()
	*code = d.uint8()
	*err = d.str()
	d.finish(n, 5)
	return d.result(name)
}
