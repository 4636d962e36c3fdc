package wire

import (
	"errors"
	"fmt"
	"math"
)

// This file holds the msgpack primitives the message codecs are built
// from. Bodies are msgpack arrays whose elements are the message fields in
// declaration order. Encoders always use the smallest format for a value;
// decoders accept every msgpack format that can represent the field (so
// bodies produced by any msgpack library decode), check every length
// against the bytes that remain before slicing or allocating, and skip
// trailing array elements they do not know, so later protocol versions can
// append fields.

// msgpack format bytes.
const (
	mpPosFixintMax = 0x7f
	mpFixmap       = 0x80
	mpFixarray     = 0x90
	mpFixstr       = 0xa0
	mpNil          = 0xc0
	mpFalse        = 0xc2
	mpTrue         = 0xc3
	mpBin8         = 0xc4
	mpBin16        = 0xc5
	mpBin32        = 0xc6
	mpExt8         = 0xc7
	mpExt16        = 0xc8
	mpExt32        = 0xc9
	mpFloat32      = 0xca
	mpFloat64      = 0xcb
	mpUint8        = 0xcc
	mpUint16       = 0xcd
	mpUint32       = 0xce
	mpUint64       = 0xcf
	mpInt8         = 0xd0
	mpInt16        = 0xd1
	mpInt32        = 0xd2
	mpInt64        = 0xd3
	mpFixext1      = 0xd4
	mpFixext16     = 0xd8
	mpStr8         = 0xd9
	mpStr16        = 0xda
	mpStr32        = 0xdb
	mpArray16      = 0xdc
	mpArray32      = 0xdd
	mpMap16        = 0xde
	mpMap32        = 0xdf
	mpNegFixintMin = 0xe0
)

// Upper bounds of encoded sizes, used to size frame buffers.
const (
	maxUintSize   = 9 // uint64 format
	maxHeaderSize = 5 // str32, bin32 and array32 headers
)

// maxSkipDepth bounds the nesting of unknown values a decoder skips.
const maxSkipDepth = 32

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixarray|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	default:
		return append(b, mpArray32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= mpPosFixintMax:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(b, mpUint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, mpInt32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(b, mpInt64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, mpFixstr|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpStr16, byte(n>>8), byte(n))
	default:
		b = append(b, mpStr32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// appendBin encodes p as msgpack bin, or nil for a nil slice.
func appendBin(b []byte, p []byte) []byte {
	if p == nil {
		return append(b, mpNil)
	}
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpBin16, byte(n>>8), byte(n))
	default:
		b = append(b, mpBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

// appendStrList encodes a string slice as an array, or nil for nil.
func appendStrList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, mpNil)
	}
	b = appendArrayHeader(b, len(l))
	for _, s := range l {
		b = appendStr(b, s)
	}
	return b
}

// errTruncated reports a value that runs past the end of the body.
var errTruncated = errors.New("truncated")

// decoder reads msgpack values from b. The first error sticks: later
// reads return zero values, and the message decoder reports the error once
// at the end.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// next consumes and returns the next format byte.
func (d *decoder) next() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	if d.off >= len(d.b) {
		d.err = errTruncated
		return 0, false
	}
	c := d.b[d.off]
	d.off++
	return c, true
}

// take consumes n bytes and returns them, capped so that appending to the
// result never overwrites the bytes that follow.
func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = errTruncated
		return nil
	}
	end := d.off + int(n)
	p := d.b[d.off:end:end]
	d.off = end
	return p
}

// be reads an n-byte big-endian unsigned integer.
func (d *decoder) be(n int) uint64 {
	p := d.take(uint64(n))
	var v uint64
	for _, x := range p {
		v = v<<8 | uint64(x)
	}
	return v
}

// arrayLen reads an array header. It reports nil for a msgpack nil.
func (d *decoder) arrayLen() (n uint64, isNil bool) {
	c, ok := d.next()
	if !ok {
		return 0, false
	}
	switch {
	case c&0xf0 == mpFixarray:
		return uint64(c & 0x0f), false
	case c == mpArray16:
		return d.be(2), false
	case c == mpArray32:
		return d.be(4), false
	case c == mpNil:
		return 0, true
	}
	d.failf("format 0x%02x is not an array", c)
	return 0, false
}

// fields reads the header of a message's field array and checks it holds
// at least want fields.
func (d *decoder) fields(want int) uint64 {
	n, isNil := d.arrayLen()
	if isNil {
		d.failf("body is nil, want an array")
	}
	if d.err == nil && n < uint64(want) {
		d.failf("%d fields, want %d", n, want)
	}
	return n
}

// list reads the header of a list whose elements each take at least
// minSize bytes, and checks the claimed count against the remaining bytes
// before the caller allocates for it.
func (d *decoder) list(minSize int) (n int, isNil bool) {
	c, isNil := d.arrayLen()
	if d.err != nil {
		return 0, false
	}
	if c > uint64(len(d.b)-d.off)/uint64(minSize) {
		d.err = errTruncated
		return 0, false
	}
	return int(c), isNil
}

// finish skips fields beyond the want this version knows and checks that
// no bytes follow the array.
func (d *decoder) finish(n uint64, want int) {
	if d.err == nil {
		d.skipN(n-uint64(want), 0)
	}
	if d.err == nil && d.off != len(d.b) {
		d.failf("%d trailing bytes", len(d.b)-d.off)
	}
}

// result wraps the sticky error, if any, for message name.
func (d *decoder) result(name string) error {
	if d.err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s body: %v", ErrMalformed, name, d.err)
}

func (d *decoder) uint() uint64 {
	c, ok := d.next()
	if !ok {
		return 0
	}
	switch {
	case c <= mpPosFixintMax:
		return uint64(c)
	case c == mpUint8:
		return d.be(1)
	case c == mpUint16:
		return d.be(2)
	case c == mpUint32:
		return d.be(4)
	case c == mpUint64:
		return d.be(8)
	case c >= mpInt8 && c <= mpInt64:
		v := d.signed(c)
		if v < 0 {
			d.failf("negative value %d for an unsigned field", v)
			return 0
		}
		return uint64(v)
	case c >= mpNegFixintMin:
		d.failf("negative value %d for an unsigned field", int8(c))
		return 0
	}
	d.failf("format 0x%02x is not an integer", c)
	return 0
}

// signed reads the payload of an int8..int64 format byte c.
func (d *decoder) signed(c byte) int64 {
	switch c {
	case mpInt8:
		return int64(int8(d.be(1)))
	case mpInt16:
		return int64(int16(d.be(2)))
	case mpInt32:
		return int64(int32(d.be(4)))
	default:
		return int64(d.be(8))
	}
}

func (d *decoder) uint8() uint8 {
	v := d.uint()
	if v > math.MaxUint8 {
		d.failf("value %d overflows uint8", v)
		return 0
	}
	return uint8(v)
}

func (d *decoder) uint32() uint32 {
	v := d.uint()
	if v > math.MaxUint32 {
		d.failf("value %d overflows uint32", v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) int() int64 {
	c, ok := d.next()
	if !ok {
		return 0
	}
	switch {
	case c <= mpPosFixintMax:
		return int64(c)
	case c >= mpNegFixintMin:
		return int64(int8(c))
	case c >= mpInt8 && c <= mpInt64:
		return d.signed(c)
	case c >= mpUint8 && c <= mpUint64:
		v := d.be(1 << (c - mpUint8))
		if v > math.MaxInt64 {
			d.failf("value %d overflows int64", v)
			return 0
		}
		return int64(v)
	}
	d.failf("format 0x%02x is not an integer", c)
	return 0
}

func (d *decoder) bool() bool {
	c, ok := d.next()
	if !ok {
		return false
	}
	switch c {
	case mpTrue:
		return true
	case mpFalse:
		return false
	}
	d.failf("format 0x%02x is not a bool", c)
	return false
}

// strBytes reads a str (or, leniently, bin) value and returns its bytes
// aliasing the body. nil reads as empty.
func (d *decoder) strBytes() []byte {
	c, ok := d.next()
	if !ok {
		return nil
	}
	switch {
	case c&0xe0 == mpFixstr:
		return d.take(uint64(c & 0x1f))
	case c == mpStr8, c == mpBin8:
		return d.take(d.be(1))
	case c == mpStr16, c == mpBin16:
		return d.take(d.be(2))
	case c == mpStr32, c == mpBin32:
		return d.take(d.be(4))
	case c == mpNil:
		return nil
	}
	d.failf("format 0x%02x is not a string", c)
	return nil
}

// str reads a string; the result is a copy, independent of the body.
func (d *decoder) str() string {
	return string(d.strBytes())
}

// bin reads a bin (or, leniently, str) value aliasing the body without
// copying. nil reads as a nil slice, an empty value as an empty non-nil one.
func (d *decoder) bin() []byte {
	c, ok := d.next()
	if !ok {
		return nil
	}
	switch {
	case c == mpBin8, c == mpStr8:
		return d.take(d.be(1))
	case c == mpBin16, c == mpStr16:
		return d.take(d.be(2))
	case c == mpBin32, c == mpStr32:
		return d.take(d.be(4))
	case c&0xe0 == mpFixstr:
		return d.take(uint64(c & 0x1f))
	case c == mpNil:
		return nil
	}
	d.failf("format 0x%02x is not binary", c)
	return nil
}

// strList reads a list of strings; nil reads as a nil slice.
func (d *decoder) strList() []string {
	n, isNil := d.list(1)
	if d.err != nil || isNil {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.str()
	}
	return l
}

// skip consumes one value of any type, nested at most maxSkipDepth deep.
func (d *decoder) skip(depth int) {
	c, ok := d.next()
	if !ok {
		return
	}
	switch {
	case c <= mpPosFixintMax, c >= mpNegFixintMin, c == mpNil, c == mpFalse, c == mpTrue:
	case c&0xf0 == mpFixmap:
		d.skipN(2*uint64(c&0x0f), depth+1)
	case c&0xf0 == mpFixarray:
		d.skipN(uint64(c&0x0f), depth+1)
	case c&0xe0 == mpFixstr:
		d.take(uint64(c & 0x1f))
	case c == mpBin8, c == mpStr8:
		d.take(d.be(1))
	case c == mpBin16, c == mpStr16:
		d.take(d.be(2))
	case c == mpBin32, c == mpStr32:
		d.take(d.be(4))
	case c == mpExt8:
		d.take(1 + d.be(1))
	case c == mpExt16:
		d.take(1 + d.be(2))
	case c == mpExt32:
		d.take(1 + d.be(4))
	case c == mpFloat32:
		d.take(4)
	case c == mpFloat64:
		d.take(8)
	case c >= mpUint8 && c <= mpUint64:
		d.take(1 << (c - mpUint8))
	case c >= mpInt8 && c <= mpInt64:
		d.take(1 << (c - mpInt8))
	case c >= mpFixext1 && c <= mpFixext16:
		d.take(1 + 1<<(c-mpFixext1))
	case c == mpArray16:
		d.skipN(d.be(2), depth+1)
	case c == mpArray32:
		d.skipN(d.be(4), depth+1)
	case c == mpMap16:
		d.skipN(2*d.be(2), depth+1)
	case c == mpMap32:
		d.skipN(2*d.be(4), depth+1)
	default:
		d.failf("invalid format byte 0x%02x", c)
	}
}

// skipN skips n values. Every value takes at least one byte, so a count
// larger than the remaining bytes fails at once and the loop is bounded by
// the body length.
func (d *decoder) skipN(n uint64, depth int) {
	if d.err != nil || n == 0 {
		return
	}
	if depth > maxSkipDepth {
		d.failf("values nested deeper than %d", maxSkipDepth)
		return
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = errTruncated
		return
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		d.skip(depth)
	}
}
