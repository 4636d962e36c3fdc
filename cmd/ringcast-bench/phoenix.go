package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/ringcast/ringcast/bench"
)

// The Phoenix Channels V2 messages the benchmark writes and reads: arrays
// [join_ref, ref, topic, event, payload] in JSON.

const (
	// joinRef is the join_ref of every connection's only join; refs of
	// later messages count up from it.
	joinRef = "1"
	// eventName is the event of the broadcasts the benchmark publishes.
	eventName = "bench"
)

// frame appends one publish message: the payload object carries the
// publisher's id, its counter and the send time, padded to PayloadSize.
func (l *load) frame(b []byte, c *loadConn, ref string, n uint64) []byte {
	b = append(b, `["`+joinRef+`","`...)
	b = append(b, ref...)
	b = append(b, `",`...)
	b = strconv.AppendQuote(b, c.name)
	b = append(b, `,"publish",["`+eventName+`",`...)
	obj := len(b)
	b = append(b, `{"p":`...)
	b = strconv.AppendInt(b, int64(c.id), 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, bench.Now(), 10)
	b = append(b, `,"x":"`...)
	for len(b)-obj < l.cfg.PayloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}]]`...)
}

// reply is what the reader needs of a non-broadcast message.
type reply struct {
	ref, topic, event, status, reason string
}

// parseReply decodes a message [join_ref, ref, topic, event, payload].
func parseReply(data []byte) (reply, bool) {
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil || len(arr) < 5 {
		return reply{}, false
	}
	var r reply
	_ = json.Unmarshal(arr[1], &r.ref)
	_ = json.Unmarshal(arr[2], &r.topic)
	_ = json.Unmarshal(arr[3], &r.event)
	var p struct {
		Status   string `json:"status"`
		Response struct {
			Reason string `json:"reason"`
		} `json:"response"`
	}
	_ = json.Unmarshal(arr[4], &p)
	r.status, r.reason = p.Status, p.Response.Reason
	return r, true
}

// broadcastPrefix starts every broadcast to a connection: its join_ref,
// then a null ref.
var broadcastPrefix = []byte(`["` + joinRef + `",null,`)

// parseBroadcast extracts publisher id, counter and send time from a
// broadcast of the benchmark's own payload, without decoding the rest.
func parseBroadcast(data []byte) (p, n uint64, t int64, ok bool) {
	if !bytes.HasPrefix(data, broadcastPrefix) {
		return 0, 0, 0, false
	}
	i := bytes.Index(data, []byte(`{"p":`))
	if i < 0 {
		return 0, 0, 0, false
	}
	rest := data[i+len(`{"p":`):]
	p, rest, ok1 := cutUint(rest, `,"n":`)
	n, rest, ok2 := cutUint(rest, `,"t":`)
	tt, _, ok3 := cutUint(rest, `,`)
	if !ok1 || !ok2 || !ok3 || tt > math.MaxInt64 {
		return 0, 0, 0, false
	}
	return p, n, int64(tt), true
}

// cutUint parses the decimal number at the start of b, which must be
// followed by sep, and returns it with what follows sep.
func cutUint(b []byte, sep string) (uint64, []byte, bool) {
	j := bytes.Index(b, []byte(sep))
	if j <= 0 {
		return 0, nil, false
	}
	v, err := strconv.ParseUint(string(b[:j]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return v, b[j+len(sep):], true
}
