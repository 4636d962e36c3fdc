package wire

import "github.com/ringcast/ringcast/transport"

// This file holds the presence messages. A topic's owner holds the topic's
// presence set; every node reports its own local entries to it
// (PresenceReport, answered by PresenceAck) and the owner passes each
// change on to the nodes that watch the topic (PresenceDiff). A node
// starts watching with PresenceWatch, answered by the set in one or more
// PresenceSync frames, and stops with PresenceUnwatch.

// PresenceEntry is one presence: a key (a user, a device) and one of its
// metas. Ref is unique in the cluster; Data is opaque to the node.
type PresenceEntry struct {
	Ref  string
	Key  string
	Data []byte
}

// PresenceReport carries a node's changes of its local presence entries
// of one topic to the topic's owner. Reset replaces every entry the owner
// holds from Origin with Joins (a node sends one after the topic's owner
// changed, or when the owner asked for it); More says the report goes on
// in the next frame (a Reset too large for one frame), whose Joins add to
// it. A report with a non-zero ReqID is answered with a PresenceAck.
type PresenceReport struct {
	ReqID  uint64
	Topic  string
	Origin string // node whose entries these are ("" = the sender)
	Reset  bool
	More   bool
	Joins  []PresenceEntry
	Leaves []string // refs
	// Seq numbers the PresenceDiff frames of one topic's owner, one after
	// the other, so that a watcher sees a lost one; 0 in reports.
	Seq uint64
}

// PresenceDiff carries one change of a topic's presence set from its
// owner to a node that watches the topic: an origin's joins and leaves,
// or, with Reset, the origin's whole set (empty when the origin failed or
// left). Its fields and body are PresenceReport's; ReqID is zero and Seq
// follows the Seq of the watcher's PresenceSync, or of the previous diff.
type PresenceDiff PresenceReport

// PresenceAck answers a PresenceReport. Code is non-zero when the owner
// refused the whole report (it is not the topic's owner, presence is off
// for the topic); Refused lists the refs of joins it refused one by one,
// with the reason of each in Reasons (same length).
type PresenceAck struct {
	ReqID   uint64
	Code    uint8 // 0 = ok
	Err     string
	Refused []string
	Reasons []string
	// Resync asks the reporter for a Reset: the owner holds nothing from
	// it (it restarted, or took the topic over).
	Resync bool
}

// PresenceWatch asks a topic's owner for its presence set and for every
// change of it from then on (PresenceDiff).
type PresenceWatch struct {
	ReqID uint64
	Topic string
}

// PresenceUnwatch stops the PresenceDiff frames of a topic to the sender.
type PresenceUnwatch struct {
	Topic string
}

// PresenceSync answers a PresenceWatch with the topic's presence set,
// grouped by origin node. More says the set goes on in the next
// PresenceSync of the same ReqID; the last frame has More false. A
// non-zero Code refuses the watch (the node is not the owner).
type PresenceSync struct {
	ReqID   uint64
	Topic   string
	Code    uint8
	Err     string
	More    bool
	Origins []string // origin of each entry of Entries (same length)
	Entries []PresenceEntry
	Seq     uint64 // the Seq of the last PresenceDiff the set reflects
}

// FrameType implements Message.
func (*PresenceReport) FrameType() transport.FrameType { return FramePresenceReport }

// AppendBody implements Message.
func (m *PresenceReport) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 8)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendStr(b, m.Origin)
	b = appendBool(b, m.Reset)
	b = appendBool(b, m.More)
	b = appendPresenceEntries(b, m.Joins)
	b = appendStrList(b, m.Leaves)
	return appendUint(b, m.Seq)
}

// DecodeBody implements Message.
func (m *PresenceReport) DecodeBody(b []byte) error { return m.decode(b, "PresenceReport") }

func (m *PresenceReport) decode(b []byte, name string) error {
	d := decoder{b: b}
	n := d.fields(8)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Origin = d.str()
	m.Reset = d.bool()
	m.More = d.bool()
	m.Joins = d.presenceEntries()
	m.Leaves = d.strList()
	m.Seq = d.uint()
	d.finish(n, 8)
	return d.result(name)
}

func (m *PresenceReport) maxBodySize() int {
	size := 1 + 2*maxUintSize + 2 + 5*maxHeaderSize + len(m.Topic) + len(m.Origin) +
		PresenceEntriesSize(m.Joins)
	for _, l := range m.Leaves {
		size += maxHeaderSize + len(l)
	}
	return size
}

// FrameType implements Message.
func (*PresenceDiff) FrameType() transport.FrameType { return FramePresenceDiff }

// AppendBody implements Message.
func (m *PresenceDiff) AppendBody(b []byte) []byte { return (*PresenceReport)(m).AppendBody(b) }

// DecodeBody implements Message.
func (m *PresenceDiff) DecodeBody(b []byte) error {
	return (*PresenceReport)(m).decode(b, "PresenceDiff")
}

func (m *PresenceDiff) maxBodySize() int { return (*PresenceReport)(m).maxBodySize() }

// FrameType implements Message.
func (*PresenceAck) FrameType() transport.FrameType { return FramePresenceAck }

// AppendBody implements Message.
func (m *PresenceAck) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 6)
	b = appendUint(b, m.ReqID)
	b = appendUint(b, uint64(m.Code))
	b = appendStr(b, m.Err)
	b = appendStrList(b, m.Refused)
	b = appendStrList(b, m.Reasons)
	return appendBool(b, m.Resync)
}

// DecodeBody implements Message.
func (m *PresenceAck) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(6)
	m.ReqID = d.uint()
	m.Code = d.uint8()
	m.Err = d.str()
	m.Refused = d.strList()
	m.Reasons = d.strList()
	m.Resync = d.bool()
	d.finish(n, 6)
	if d.err == nil && len(m.Refused) != len(m.Reasons) {
		d.failf("%d refused refs but %d reasons", len(m.Refused), len(m.Reasons))
	}
	return d.result("PresenceAck")
}

func (m *PresenceAck) maxBodySize() int {
	size := 1 + 2*maxUintSize + 3*maxHeaderSize + len(m.Err) + 1
	for _, s := range m.Refused {
		size += maxHeaderSize + len(s)
	}
	for _, s := range m.Reasons {
		size += maxHeaderSize + len(s)
	}
	return size
}

// FrameType implements Message.
func (*PresenceWatch) FrameType() transport.FrameType { return FramePresenceWatch }

// AppendBody implements Message.
func (m *PresenceWatch) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 2)
	b = appendUint(b, m.ReqID)
	return appendStr(b, m.Topic)
}

// DecodeBody implements Message.
func (m *PresenceWatch) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(2)
	m.ReqID = d.uint()
	m.Topic = d.str()
	d.finish(n, 2)
	return d.result("PresenceWatch")
}

func (m *PresenceWatch) maxBodySize() int { return 1 + maxUintSize + maxHeaderSize + len(m.Topic) }

// FrameType implements Message.
func (*PresenceUnwatch) FrameType() transport.FrameType { return FramePresenceUnwatch }

// AppendBody implements Message.
func (m *PresenceUnwatch) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 1)
	return appendStr(b, m.Topic)
}

// DecodeBody implements Message.
func (m *PresenceUnwatch) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(1)
	m.Topic = d.str()
	d.finish(n, 1)
	return d.result("PresenceUnwatch")
}

func (m *PresenceUnwatch) maxBodySize() int { return 1 + maxHeaderSize + len(m.Topic) }

// FrameType implements Message.
func (*PresenceSync) FrameType() transport.FrameType { return FramePresenceSync }

// AppendBody implements Message.
func (m *PresenceSync) AppendBody(b []byte) []byte {
	b = appendArrayHeader(b, 8)
	b = appendUint(b, m.ReqID)
	b = appendStr(b, m.Topic)
	b = appendUint(b, uint64(m.Code))
	b = appendStr(b, m.Err)
	b = appendBool(b, m.More)
	b = appendStrList(b, m.Origins)
	b = appendPresenceEntries(b, m.Entries)
	return appendUint(b, m.Seq)
}

// DecodeBody implements Message.
func (m *PresenceSync) DecodeBody(b []byte) error {
	d := decoder{b: b}
	n := d.fields(8)
	m.ReqID = d.uint()
	m.Topic = d.str()
	m.Code = d.uint8()
	m.Err = d.str()
	m.More = d.bool()
	m.Origins = d.strList()
	m.Entries = d.presenceEntries()
	m.Seq = d.uint()
	d.finish(n, 8)
	if d.err == nil && len(m.Origins) != len(m.Entries) {
		d.failf("%d origins but %d entries", len(m.Origins), len(m.Entries))
	}
	return d.result("PresenceSync")
}

func (m *PresenceSync) maxBodySize() int {
	size := 1 + 3*maxUintSize + 5*maxHeaderSize + len(m.Topic) + len(m.Err) + 1 + PresenceEntriesSize(m.Entries)
	for _, o := range m.Origins {
		size += maxHeaderSize + len(o)
	}
	return size
}

// RequestID implements Reply.
func (m *PresenceAck) RequestID() uint64 { return m.ReqID }

// RequestID implements Reply.
func (m *PresenceSync) RequestID() uint64 { return m.ReqID }

// PresenceEntrySize bounds the encoded size of one entry, for senders that
// split a list into frames.
func PresenceEntrySize(e *PresenceEntry) int {
	return 1 + 3*maxHeaderSize + len(e.Ref) + len(e.Key) + len(e.Data)
}

// PresenceEntriesSize bounds the encoded size of a list of entries.
func PresenceEntriesSize(l []PresenceEntry) int {
	size := maxHeaderSize
	for i := range l {
		size += PresenceEntrySize(&l[i])
	}
	return size
}

// appendPresenceEntries appends a list of entries (nil as msgpack nil),
// each an array [Ref, Key, Data].
func appendPresenceEntries(b []byte, l []PresenceEntry) []byte {
	if l == nil {
		return append(b, mpNil)
	}
	b = appendArrayHeader(b, len(l))
	for i := range l {
		b = appendArrayHeader(b, 3)
		b = appendStr(b, l[i].Ref)
		b = appendStr(b, l[i].Key)
		b = appendBin(b, l[i].Data)
	}
	return b
}

// presenceEntries decodes a list written by appendPresenceEntries. Each
// entry takes at least 4 bytes (its header and three values).
func (d *decoder) presenceEntries() []PresenceEntry {
	n, isNil := d.list(4)
	if d.err != nil || isNil {
		return nil
	}
	l := make([]PresenceEntry, n)
	for i := range l {
		f := d.fields(3)
		l[i].Ref = d.str()
		l[i].Key = d.str()
		l[i].Data = d.bin()
		if d.err == nil {
			d.skipN(f-3, 0)
		}
		if d.err != nil {
			return nil
		}
	}
	return l
}
