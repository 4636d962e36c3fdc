package gateway

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// Phoenix Channels names.
const (
	eventJoin      = "phx_join"
	eventLeave     = "phx_leave"
	eventClose     = "phx_close"
	eventError     = "phx_error"
	eventHeartbeat = "heartbeat"
	eventPublish   = "publish"
	topicPhoenix   = "phoenix"

	// reservedEventPrefix starts the lifecycle events of Phoenix clients; a
	// client may not publish them to others.
	reservedEventPrefix = "phx_"
	// publishEventPrefix lets a binary push name the event of its broadcast:
	// "publish:NAME" publishes the payload as event NAME.
	publishEventPrefix = "publish:"

	statusOK    = "ok"
	statusError = "error"
	emptyObject = "{}"
	jsonNull    = "null"
)

// Layout of the messages.
const (
	// Kinds of the V2 binary serializer's messages; the server never sends
	// kind 2 (broadcast), as its broadcasts carry the receiver's join_ref.
	kindPush  byte = 0
	kindReply byte = 1

	// pushHeaderLen is the fixed part of a client push: kind and four lengths.
	pushHeaderLen = 5
	// maxRefLen bounds join_ref and ref, which binary messages carry behind a
	// one-byte length.
	maxRefLen = 255
	// frameElements is the length of a text message's array.
	frameElements = 5
	// publishPayloadElements is the length of a text publish's payload [event, body].
	publishPayloadElements = 2
)

// Reasons of error replies.
const (
	reasonMalformedJSON   = "malformed JSON"
	reasonArity           = "a message must be an array of 5 elements [join_ref, ref, topic, event, payload]"
	reasonJoinRefType     = "join_ref must be a string or null"
	reasonRefType         = "ref must be a string or null"
	reasonTopicType       = "topic must be a string"
	reasonEventType       = "event must be a string"
	reasonTextUTF8        = "text message is not valid UTF-8"
	reasonJoinRefLen      = "join_ref longer than 255 bytes"
	reasonRefLen          = "ref longer than 255 bytes"
	reasonBinaryShort     = "binary message shorter than its header"
	reasonBinaryLengths   = "binary message shorter than the lengths in its header"
	reasonUnmatchedTopic  = "unmatched topic"
	reasonUnknownEvent    = "unknown event"
	reasonReservedTopic   = "reserved topic"
	reasonTooManyTopics   = "too many topics"
	reasonJoinPayload     = "join payload must be a JSON object"
	reasonPublishPayload  = "publish payload must be [event, body]"
	reasonPublishBody     = "publish body must be a JSON object"
	reasonReservedEvent   = "reserved event"
	reasonJoinTimeout     = "join timeout"
	reasonSubscribeFailed = "subscribe failed"
	reasonNoRecovery      = "recovery not supported"
	reasonPublishTimeout  = "publish timeout"
	reasonPublishFailed   = "publish failed"
	reasonUnauthorized    = "unauthorized"
	reasonJoinFailed      = "join failed"
	reasonEventFailed     = "event failed"
	reasonEventTimeout    = "event timeout"
	reasonChannelPayload  = "payload must be JSON"
	invalidTopicPrefix    = "invalid topic: "
	invalidEventPrefix    = "invalid event: "
	unsupportedKindPrefix = "binary message kind "
	unsupportedKindSuffix = " is not supported, only 0 (push)"
)

// optString is a string that may be null.
type optString struct {
	s  string
	ok bool
}

func some(s string) optString { return optString{s: s, ok: true} }

// matches reports whether two join refs designate the same join; null
// matches anything (a client that does not track join refs).
func (o optString) matches(p optString) bool {
	return !o.ok || !p.ok || o.s == p.s
}

// frame is one message from a client, text or binary.
type frame struct {
	joinRef optString
	ref     optString
	topic   string
	topicOK bool // topic was a string, even if invalid
	event   string
	payload []byte // raw JSON (text frames) or bytes (binary frames)
	binary  bool
}

// frameError is a message the gateway refuses; reason goes into the error reply.
type frameError struct{ reason string }

func (e *frameError) Error() string { return "gateway: " + e.reason }

func refuse(reason string) error { return &frameError{reason: reason} }

// parseJSONFrame parses a text message [join_ref, ref, topic, event, payload].
// On error the frame holds whatever could be recovered (refs, topic), so the
// caller can still address an error reply.
func parseJSONFrame(data []byte) (frame, error) {
	var f frame
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		if _, ok := err.(*json.UnmarshalTypeError); ok {
			return f, refuse(reasonArity)
		}
		return f, refuse(reasonMalformedJSON)
	}
	if elems == nil {
		return f, refuse(reasonArity) // the literal null
	}
	// Recover the addressing elements first, so that an arity error can be answered.
	jrOK, refOK, topicOK := true, true, true
	if len(elems) > 0 {
		f.joinRef, jrOK = decodeOptString(elems[0])
	}
	if len(elems) > 1 {
		f.ref, refOK = decodeOptString(elems[1])
	}
	if len(elems) > 2 {
		var t optString
		t, topicOK = decodeOptString(elems[2])
		topicOK = topicOK && t.ok
		f.topic, f.topicOK = t.s, topicOK
	}
	switch {
	case !jrOK:
		f.joinRef = optString{}
		return f, refuse(reasonJoinRefType)
	case !refOK:
		f.ref = optString{}
		return f, refuse(reasonRefType)
	case len(elems) != frameElements:
		return f, refuse(reasonArity)
	case !topicOK:
		return f, refuse(reasonTopicType)
	}
	ev, ok := decodeOptString(elems[3])
	if !ok || !ev.ok {
		return f, refuse(reasonEventType)
	}
	f.event = ev.s
	f.payload = elems[4]
	// Payloads are passed on as they are, in text messages, which must be
	// UTF-8 (a browser closes a connection that receives anything else).
	if !utf8.Valid(data) {
		return f, refuse(reasonTextUTF8)
	}
	return f, f.check()
}

// check applies the rules common to text and binary frames.
func (f *frame) check() error {
	if len(f.joinRef.s) > maxRefLen {
		return refuse(reasonJoinRefLen)
	}
	if len(f.ref.s) > maxRefLen {
		return refuse(reasonRefLen)
	}
	if reason := topics.NameProblem(f.topic, MaxTopicLen); reason != "" {
		return refuse(invalidTopicPrefix + reason)
	}
	if reason := topics.NameProblem(f.event, MaxEventLen); reason != "" {
		return refuse(invalidEventPrefix + reason)
	}
	return nil
}

// decodeOptString decodes a JSON string or null. ok is false for any other value.
func decodeOptString(raw json.RawMessage) (optString, bool) {
	if string(raw) == jsonNull {
		return optString{}, true
	}
	if len(raw) < 2 || raw[0] != '"' {
		return optString{}, false
	}
	// Fast path: no escapes, nothing to unquote.
	plain := true
	for _, b := range raw[1 : len(raw)-1] {
		if b == '\\' || b == '"' || b < 0x20 {
			plain = false
			break
		}
	}
	if plain && utf8.Valid(raw[1:len(raw)-1]) {
		return some(string(raw[1 : len(raw)-1])), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return optString{}, false
	}
	return some(s), true
}

// parseBinaryFrame parses a client push of the V2 binary serializer:
// 0, jr_len, ref_len, topic_len, event_len, jr, ref, topic, event, payload.
// An empty join_ref or ref stands for null. payload aliases data.
func parseBinaryFrame(data []byte) (frame, error) {
	f := frame{binary: true}
	if len(data) == 0 {
		return f, refuse(reasonBinaryShort)
	}
	if data[0] != kindPush {
		return f, refuse(unsupportedKindPrefix + strconv.Itoa(int(data[0])) + unsupportedKindSuffix)
	}
	if len(data) < pushHeaderLen {
		return f, refuse(reasonBinaryShort)
	}
	lens := [4]int{int(data[1]), int(data[2]), int(data[3]), int(data[4])}
	var fields [4]string
	off := pushHeaderLen
	for i, n := range lens {
		if len(data)-off < n {
			// Keep what was recovered: join_ref, ref, topic in that order.
			f.joinRef, f.ref = binaryRef(fields[0], i > 0), binaryRef(fields[1], i > 1)
			if i > 2 {
				f.topic, f.topicOK = fields[2], true
			}
			return f, refuse(reasonBinaryLengths)
		}
		fields[i] = string(data[off : off+n])
		off += n
	}
	f.joinRef, f.ref = binaryRef(fields[0], true), binaryRef(fields[1], true)
	f.topic, f.topicOK = fields[2], true
	f.event = fields[3]
	f.payload = data[off:]
	return f, f.check()
}

func binaryRef(s string, present bool) optString {
	if !present || s == "" {
		return optString{}
	}
	return some(s)
}

// appendJSONString appends s as a JSON string. Only what JSON requires is
// escaped; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		if b >= 0x20 && b != '"' && b != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendOptString(dst []byte, s optString) []byte {
	if !s.ok {
		return append(dst, jsonNull...)
	}
	return appendJSONString(dst, s.s)
}

// appendJSONMessage appends [join_ref, ref, topic, event, payload].
func appendJSONMessage(dst []byte, jr, ref optString, topic, event string, payload []byte) []byte {
	dst = append(dst, '[')
	dst = appendOptString(dst, jr)
	dst = append(dst, ',')
	dst = appendOptString(dst, ref)
	dst = append(dst, ',')
	dst = appendJSONString(dst, topic)
	dst = append(dst, ',')
	dst = appendJSONString(dst, event)
	dst = append(dst, ',')
	dst = append(dst, payload...)
	return append(dst, ']')
}

// appendJSONReply appends [join_ref, ref, topic, "phx_reply", {"status":status,"response":response}].
func appendJSONReply(dst []byte, jr, ref optString, topic, status string, response []byte) []byte {
	dst = append(dst, '[')
	dst = appendOptString(dst, jr)
	dst = append(dst, ',')
	dst = appendOptString(dst, ref)
	dst = append(dst, ',')
	dst = appendJSONString(dst, topic)
	dst = append(dst, `,"phx_reply",{"status":`...)
	dst = appendJSONString(dst, status)
	dst = append(dst, `,"response":`...)
	dst = append(dst, response...)
	return append(dst, "}]"...)
}

// appendBinaryReply appends a reply of the V2 binary serializer:
// 1, jr_len, ref_len, topic_len, status_len, jr, ref, topic, status, response.
// ok is false if a string is longer than 255 bytes.
func appendBinaryReply(dst []byte, jr, ref optString, topic, status string, response []byte) ([]byte, bool) {
	if len(jr.s) > maxRefLen || len(ref.s) > maxRefLen || len(topic) > MaxTopicLen || len(status) > 255 {
		return dst, false
	}
	dst = append(dst, kindReply, byte(len(jr.s)), byte(len(ref.s)), byte(len(topic)), byte(len(status)))
	dst = append(dst, jr.s...)
	dst = append(dst, ref.s...)
	dst = append(dst, topic...)
	dst = append(dst, status...)
	return append(dst, response...), true
}

// appendBinaryPushHeader appends the receiver-specific start of a server push
// of the V2 binary serializer: 0, jr_len, topic_len, event_len, jr. The shared
// rest is topic, event, payload.
func appendBinaryPushHeader(dst []byte, jr optString, topicLen, eventLen int) []byte {
	dst = append(dst, kindPush, byte(len(jr.s)), byte(topicLen), byte(eventLen))
	return append(dst, jr.s...)
}

// appendReasonResponse appends {"reason":reason}.
func appendReasonResponse(dst []byte, reason string) []byte {
	dst = append(dst, `{"reason":`...)
	dst = appendJSONString(dst, reason)
	return append(dst, '}')
}

// appendSeqResponse appends {"seq":seq}, the publish reply of a client that opted in to metadata.
func appendSeqResponse(dst []byte, seq uint64) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// appendMetaSuffix appends the sixth element of a broadcast to a client that
// opted in to metadata, and the closing bracket: ,{"seq":n,"epoch":e}].
func appendMetaSuffix(dst []byte, seq, epoch uint64) []byte {
	dst = append(dst, `,{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"epoch":"`...)
	dst = strconv.AppendUint(dst, epoch, 10)
	return append(dst, `"}]`...)
}
