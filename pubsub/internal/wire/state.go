package wire

import "github.com/ringcast/ringcast/transport"

// This file holds the messages that move a topic's state between nodes:
// a new owner's claim (StateRequest, answered by State), the previous
// owner's push (Handoff, answered by StateAck), the parts of a state too
// large for one frame (StateChunk, answered by ChunkAck), and the owner's
// note to its replicas (ReplicaNodes).

// StateRequest asks a node for its state of a topic.
type StateRequest struct {
	ReqID uint64
	Topic string
	Peek  bool // only report epoch and sequence; the topic does not move
}

// State answers a StateRequest with the answering node's state of the
// topic: the owner's, or a replica's copy (Replica: sequence and history,
// and the subscriber nodes the owner last told it).
type State struct {
	ReqID   uint64
	Topic   string
	Found   bool
	Epoch   uint64
	Seq     uint64
	Nodes   []string // subscriber node names
	History []HistoryEntry
	Replica bool // a replica's copy, not the owner's state
	// Xfer, when not zero, says the history continues in StateChunk
	// frames of this transfer: History holds its first part.
	Xfer uint64
}

// Handoff pushes a topic's state from its previous owner to its new one,
// which adopts it and answers with a StateAck.
type Handoff struct {
	ReqID   uint64
	Topic   string
	Epoch   uint64
	Seq     uint64
	Nodes   []string // subscriber node names
	History []HistoryEntry
	// Xfer, when not zero, says the history continues in StateChunk
	// frames of this transfer: History holds its first part, and the
	// StateAck answers the last chunk.
	Xfer uint64
}

// State returns the hand-off as the State of a topic that was found,
// sharing the slices.
func (m *Handoff) State() *State {
	return &State{ReqID: m.ReqID, Topic: m.Topic, Found: true, Epoch: m.Epoch, Seq: m.Seq, Nodes: m.Nodes, History: m.History, Xfer: m.Xfer}
}

// StateChunk carries a part of the history of a State or Handoff whose
// Xfer names the transfer. Chunks are numbered from 1 (the first frame is
// part 0) and sent in order on one link; the receiver acknowledges each
// with a ChunkAck, and adopts the state once the Last one has arrived. A
// sender that gives up sends Abort (no history), and the receiver drops
// what it gathered.
type StateChunk struct {
	Xfer    uint64
	Topic   string
	Index   uint64
	Last    bool
	Abort   bool
	History []HistoryEntry
}

// ChunkAck acknowledges the parts of a transfer up to Index. A non-zero
// Code refuses the transfer (the receiver does not know it, or no longer
// wants it): the sender stops.
type ChunkAck struct {
	Xfer  uint64
	Index uint64
	Code  uint8 // 0 = ok
	Err   string
}

// ReplicaNodes tells a topic's replica which nodes subscribe to the topic,
// so that an owner rebuilt from that replica delivers to them at once.
type ReplicaNodes struct {
	Topic string
	Epoch uint64
	Seq   uint64
	Nodes []string // subscriber node names
}

// StateAck answers a Handoff.
type StateAck struct {
	ReqID uint64
	Code  uint8 // 0 = ok
	Err   string
}

// FrameType implements Message.
func (*StateRequest) FrameType() transport.FrameType { return FrameStateRequest }

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

// FrameType implements Message.
func (*State) FrameType() transport.FrameType { return FrameState }

// AppendBody implements Message.
func (m *State) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 9)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendBool(b, m.Found)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendStrList(b, m.Nodes)
	b = appendHistory(b, m.History)
	b = appendBool(b, m.Replica)
	return appendUint(b, m.Xfer)
}

// DecodeBody implements Message.
func (m *State) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(9)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Found = d.bool()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Nodes = d.strList()
	m.History = d.history()
	m.Replica = d.bool()
	m.Xfer = d.uint()
	d.finish(n, 9)
	if d.err != nil {
		m.Nodes, m.History = nil, nil
	}
	return d.result("State")
}

func (m *State) maxBodySize() int {
	return 1 + 4*maxUintSize + 2*maxHeaderSize + len(m.Topic) + 2 + nodesSize(m.Nodes) + historySize(m.History)
}

// FrameType implements Message.
func (*Handoff) FrameType() transport.FrameType { return FrameHandoff }

// AppendBody implements Message.
func (m *Handoff) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 7)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	b = appendStrList(b, m.Nodes)
	b = appendHistory(b, m.History)
	return appendUint(b, m.Xfer)
}

// DecodeBody implements Message.
func (m *Handoff) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(7)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Nodes = d.strList()
	m.History = d.history()
	m.Xfer = d.uint()
	d.finish(n, 7)
	if d.err != nil {
		m.Nodes, m.History = nil, nil
	}
	return d.result("Handoff")
}

func (m *Handoff) maxBodySize() int {
	return 1 + 4*maxUintSize + 2*maxHeaderSize + len(m.Topic) + nodesSize(m.Nodes) + historySize(m.History)
}

// FrameType implements Message.
func (*ReplicaNodes) FrameType() transport.FrameType { return FrameReplicaNodes }

// AppendBody implements Message.
func (m *ReplicaNodes) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 4)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Epoch)
	b = appendUint(b, m.Seq)
	return appendStrList(b, m.Nodes)
}

// DecodeBody implements Message.
func (m *ReplicaNodes) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(4)
	m.Topic = d.str()
	m.Epoch = d.uint()
	m.Seq = d.uint()
	m.Nodes = d.strList()
	d.finish(n, 4)
	if d.err != nil {
		m.Nodes = nil
	}
	return d.result("ReplicaNodes")
}

func (m *ReplicaNodes) maxBodySize() int {
	return 1 + 2*maxUintSize + maxHeaderSize + len(m.Topic) + nodesSize(m.Nodes)
}

// nodesSize bounds the encoding of a list of node names.
func nodesSize(nodes []string) int {
	n := maxHeaderSize
	for _, s := range nodes {
		n += maxHeaderSize + len(s)
	}
	return n
}

// FrameType implements Message.
func (*StateAck) FrameType() transport.FrameType { return FrameStateAck }

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

// FrameType implements Message.
func (*StateChunk) FrameType() transport.FrameType { return FrameStateChunk }

// AppendBody implements Message.
func (m *StateChunk) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 6)
	b = appendUint(b, m.Xfer)
	b = appendStr(b, m.Topic)
	b = appendUint(b, m.Index)
	b = appendBool(b, m.Last)
	b = appendBool(b, m.Abort)
	return appendHistory(b, m.History)
}

// DecodeBody implements Message.
func (m *StateChunk) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(6)
	m.Xfer = d.uint()
	m.Topic = d.str()
	m.Index = d.uint()
	m.Last = d.bool()
	m.Abort = d.bool()
	m.History = d.history()
	d.finish(n, 6)
	if d.err != nil {
		m.History = nil
	}
	return d.result("StateChunk")
}

func (m *StateChunk) maxBodySize() int {
	return 1 + 2*maxUintSize + 2*maxHeaderSize + len(m.Topic) + 2 + historySize(m.History)
}

// FrameType implements Message.
func (*ChunkAck) FrameType() transport.FrameType { return FrameChunkAck }

// AppendBody implements Message.
func (m *ChunkAck) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 4)
	b = appendUint(b, m.Xfer)
	b = appendUint(b, m.Index)
	b = appendUint(b, uint64(m.Code))
	return appendStr(b, m.Err)
}

// DecodeBody implements Message.
func (m *ChunkAck) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(4)
	m.Xfer = d.uint()
	m.Index = d.uint()
	m.Code = d.uint8()
	m.Err = d.str()
	d.finish(n, 4)
	return d.result("ChunkAck")
}

func (m *ChunkAck) maxBodySize() int {
	return 1 + 3*maxUintSize + maxHeaderSize + len(m.Err)
}

// HistoryEntrySize bounds the encoding of one history entry holding
// dataLen bytes, so that a sender can fill a frame without building it.
func HistoryEntrySize(dataLen int) int {
	return 1 + 2*maxUintSize + maxHeaderSize + dataLen
}

// StateOverhead bounds what a State, Handoff or StateChunk frame of topic
// with the given subscriber nodes takes besides its history entries:
// frame header, fields, and the history list's header.
func StateOverhead(topic string, nodes []string) int {
	return transport.FrameHeaderSize + 1 + 5*maxUintSize + 3*maxHeaderSize + len(topic) + 3 + nodesSize(nodes)
}
