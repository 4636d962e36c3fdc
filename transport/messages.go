package transport

// Message is implemented by every pubsub wire message (with pointer
// receivers). A message value is not safe for concurrent use while it is
// being decoded into; encoding only reads it.
type Message interface {
	// FrameType returns the frame type that carries this message.
	FrameType() FrameType
	// AppendBody appends the msgpack body of the message to b and returns
	// the extended slice.
	AppendBody(b []byte) []byte
	// DecodeBody parses a body into the message, overwriting every field.
	// []byte fields alias b (zero copy), strings are copies. Errors wrap
	// ErrMalformed.
	DecodeBody(b []byte) error
}

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
//
// When that node is also one of the topic's replicas, Replica is set and
// the frame stands for the Replicate the owner would otherwise send it
// too: the node keeps a copy (taken at Time, acknowledged with a
// ReplicateAck when ReqID is not zero) and delivers it. The payload
// crosses the link once instead of twice. Time and ReqID are zero without
// Replica. The body always has all seven fields (three bytes more for a
// plain delivery), so that the msgpack library decodes it as this struct.
type Deliver struct {
	Topic   string
	Epoch   uint64
	Seq     uint64
	Data    []byte
	Replica bool
	Time    int64  // unix nanoseconds at the owner, with Replica
	ReqID   uint64 // with Replica, non-zero: answer with a ReplicateAck
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

// StateRequest asks a node for its state of a topic.
type StateRequest struct {
	ReqID uint64
	Topic string
	Peek  bool // only report epoch and sequence; the topic does not move
}

// HistoryEntry is one retained message of a topic.
type HistoryEntry struct {
	Seq  uint64
	Time int64 // unix nanoseconds at the owner
	Data []byte
}

// TopicState is the state of one topic: the reply to a StateRequest, or a
// hand-off pushed to a topic's new owner.
type TopicState struct {
	ReqID   uint64
	Topic   string
	Found   bool
	Epoch   uint64
	Seq     uint64
	Nodes   []string // subscriber node names
	History []HistoryEntry
	Handoff bool // pushed by the previous owner (answered with StateAck), not a reply
	Replica bool // a replica's copy (sequence and history, no subscriber nodes), not the owner's state
}

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

// StateAck answers a pushed TopicState.
type StateAck struct {
	ReqID uint64
	Code  uint8 // 0 = ok
	Err   string
}

// FrameType implements Message.
func (*Publish) FrameType() FrameType { return FramePublish }

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
func (*PublishAck) FrameType() FrameType { return FramePublishAck }

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
func (*Deliver) FrameType() FrameType { return FrameDeliver }

// AppendBody implements Message.
func (m *Deliver) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 7)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendBin(b, m.Data)
	b = appendBool(b, m.Replica)
	b = appendInt(b, m.Time)
	return appendUint(b, m.ReqID)
}

// DecodeBody implements Message.
func (m *Deliver) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(7)
	m.Topic = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Data = d.bin()
	m.Replica = d.bool()
	m.Time = d.int()
	m.ReqID = d.uint()
	d.finish(n, 7)
	return d.result("Deliver")
}

func (m *Deliver) maxBodySize() int {
	return 2 + 4*maxUintSize + 2*maxHeaderSize + len(m.Topic) + len(m.Data)
}

// FrameType implements Message.
func (*Subscribe) FrameType() FrameType { return FrameSubscribe }

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
func (*SubscribeAck) FrameType() FrameType { return FrameSubscribeAck }

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
func (*Unsubscribe) FrameType() FrameType { return FrameUnsubscribe }

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

// FrameType implements Message.
func (*StateRequest) FrameType() FrameType { return FrameStateRequest }

// AppendBody implements Message.
func (m *StateRequest) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 3)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	return appendBool(b, m.Peek)
}

// DecodeBody implements Message.
func (m *StateRequest) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(3)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Peek = d.bool()
	d.finish(n, 3)
	return d.result("StateRequest")
}

func (m *StateRequest) maxBodySize() int {
	return 1 + maxUintSize + maxHeaderSize + len(m.Topic) + 1
}

// historyEntryMinSize is the smallest encoding of a HistoryEntry: an array
// header and three one-byte fields.
const historyEntryMinSize = 4

// FrameType implements Message.
func (*TopicState) FrameType() FrameType { return FrameState }

// AppendBody implements Message.
func (m *TopicState) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 9)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendBool(b, m.Found)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendStrList(b, m.Nodes)
	b = appendHistory(b, m.History)
	b = appendBool(b, m.Handoff)
	return appendBool(b, m.Replica)
}

// DecodeBody implements Message.
func (m *TopicState) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(8)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Found = d.bool()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Nodes = d.strList()
	m.History = d.history()
	m.Handoff = d.bool()
	// Replica came after the first version of this message: optional.
	m.Replica = false
	want := 8
	if n > 8 {
		m.Replica = d.bool()
		want = 9
	}
	d.finish(n, want)
	if d.err != nil {
		m.Nodes, m.History = nil, nil
	}
	return d.result("TopicState")
}

func (m *TopicState) maxBodySize() int {
	n := 1 + 3*maxUintSize + maxHeaderSize + len(m.Topic) + 3 + 2*maxHeaderSize
	for _, s := range m.Nodes {
		n += maxHeaderSize + len(s)
	}
	return n + historySize(m.History)
}

// FrameType implements Message.
func (*StateAck) FrameType() FrameType { return FrameStateAck }

// AppendBody implements Message.
func (m *StateAck) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 3)
	b = appendUint(b, m.ReqID)
	b = appendUint(b, uint64(m.Code))
	return appendStr(b, m.Err)
}

// DecodeBody implements Message.
func (m *StateAck) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(3)
	m.ReqID = d.uint()
	m.Code = d.uint8()
	m.Err = d.str()
	d.finish(n, 3)
	return d.result("StateAck")
}

func (m *StateAck) maxBodySize() int {
	return 1 + 2*maxUintSize + maxHeaderSize + len(m.Err)
}

// newMessage returns a zero message for a known frame type, or nil.
func newMessage(t FrameType) Message {
	switch t {
	case FrameHello:
		return new(hello)
	case FrameHelloAck:
		return new(helloAck)
	case FrameProof:
		return new(proof)
	case FramePublish:
		return new(Publish)
	case FramePublishAck:
		return new(PublishAck)
	case FrameDeliver:
		return new(Deliver)
	case FrameSubscribe:
		return new(Subscribe)
	case FrameSubscribeAck:
		return new(SubscribeAck)
	case FrameUnsubscribe:
		return new(Unsubscribe)
	case FrameStateRequest:
		return new(StateRequest)
	case FrameState:
		return new(TopicState)
	case FrameStateAck:
		return new(StateAck)
	case FrameReplicate:
		return new(Replicate)
	case FrameReplicateAck:
		return new(ReplicateAck)
	case FrameHistoryRequest:
		return new(HistoryRequest)
	case FrameHistory:
		return new(History)
	}
	return nil
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
