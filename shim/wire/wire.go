// Package wire reads and writes, by hand, the protobuf messages a shim
// exchanges with containerd: the task API's requests and responses, the task
// events, and ttrpc's own request and response frames.
//
// The messages are containerd's generated Go types (containerd/api); only
// their encoding is done here, field by field with protowire, instead of by
// protobuf's reflection runtime. That runtime builds, the first time it
// encodes or decodes a message type, tables for the type and decodes its
// whole .proto file's descriptor: about 230 KB that a shim, which never
// collects garbage while it idles, would keep for its whole life. One shim
// runs per container, so that is what each container would cost.
//
// The tests check every codec here against protobuf's own encoding of the
// same types, on messages with every field set (wire_test.go), so a field
// containerd adds to these messages shows up as a failing test, not as a
// silently dropped value.
package wire

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// encoder appends fields to a message. Zero scalars are left out, as proto3
// does; set message fields are written even when empty.
type encoder struct{ b []byte }

func (e *encoder) tag(n protowire.Number, t protowire.Type) {
	e.b = protowire.AppendTag(e.b, n, t)
}

func (e *encoder) str(n protowire.Number, s string) {
	if s != "" {
		e.tag(n, protowire.BytesType)
		e.b = protowire.AppendString(e.b, s)
	}
}

func (e *encoder) bytes(n protowire.Number, b []byte) {
	if len(b) > 0 {
		e.tag(n, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, b)
	}
}

func (e *encoder) uint(n protowire.Number, v uint64) {
	if v != 0 {
		e.tag(n, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

// int writes int32 and int64 fields: negative values take ten bytes, as
// protobuf sign-extends them.
func (e *encoder) int(n protowire.Number, v int64) { e.uint(n, uint64(v)) }

func (e *encoder) boolean(n protowire.Number, v bool) {
	if v {
		e.uint(n, 1)
	}
}

// message writes a nested message that fill encodes.
func (e *encoder) message(n protowire.Number, fill func(*encoder)) {
	var sub encoder
	fill(&sub)
	e.tag(n, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, sub.b)
}

func (e *encoder) timestamp(n protowire.Number, t *timestamppb.Timestamp) {
	if t != nil {
		e.message(n, func(e *encoder) {
			e.int(1, t.Seconds)
			e.int(2, int64(t.Nanos))
		})
	}
}

func (e *encoder) any(n protowire.Number, a *anypb.Any) {
	if a != nil {
		e.message(n, func(e *encoder) {
			e.str(1, a.TypeUrl)
			e.bytes(2, a.Value)
		})
	}
}

// field is one field read from a message: its number, wire type and value.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // varint and fixed values
	b   []byte // length-delimited values (aliasing the input)
}

// fields calls f with each field of the message in b, in order. Groups and
// fields of types f ignores are skipped, as unknown fields are.
func fields(b []byte, f func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		fl := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			fl.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			fl.b, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			fl.u = uint64(v)
		case protowire.Fixed64Type:
			fl.u, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(fl); err != nil {
			return err
		}
	}
	return nil
}

// The setters below store a field's value if its wire type is the one the
// field has; a field that arrives with another wire type is skipped, as
// protobuf skips it.

func (f field) str(dst *string) {
	if f.typ == protowire.BytesType {
		*dst = string(f.b)
	}
}

func (f field) bytes(dst *[]byte) {
	if f.typ == protowire.BytesType {
		*dst = append([]byte(nil), f.b...)
	}
}

func (f field) uint32(dst *uint32) {
	if f.typ == protowire.VarintType {
		*dst = uint32(f.u)
	}
}

func (f field) int64(dst *int64) {
	if f.typ == protowire.VarintType {
		*dst = int64(f.u)
	}
}

func (f field) int32(dst *int32) {
	if f.typ == protowire.VarintType {
		*dst = int32(f.u)
	}
}

func (f field) boolean(dst *bool) {
	if f.typ == protowire.VarintType {
		*dst = f.u != 0
	}
}

// message decodes a nested message with decode, if the field is one (a
// field of another wire type is skipped). A repeated occurrence of a
// singular message field merges into the first, as protobuf merges.
func (f field) message(decode func([]byte) error) error {
	if f.typ != protowire.BytesType {
		return nil
	}
	return decode(f.b)
}

func decodeAny(dst **anypb.Any) func([]byte) error {
	return func(b []byte) error {
		if *dst == nil {
			*dst = &anypb.Any{}
		}
		a := *dst
		return fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&a.TypeUrl)
			case 2:
				f.bytes(&a.Value)
			}
			return nil
		})
	}
}

func decodeTimestamp(dst **timestamppb.Timestamp) func([]byte) error {
	return func(b []byte) error {
		if *dst == nil {
			*dst = &timestamppb.Timestamp{}
		}
		t := *dst
		return fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.int64(&t.Seconds)
			case 2:
				f.int32(&t.Nanos)
			}
			return nil
		})
	}
}

// stringMap decodes one entry of a map<string, string> field.
func stringMap(dst *map[string]string) func([]byte) error {
	return func(b []byte) error {
		var k, v string
		err := fields(b, func(f field) error {
			switch f.num {
			case 1:
				f.str(&k)
			case 2:
				f.str(&v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if *dst == nil {
			*dst = map[string]string{}
		}
		(*dst)[k] = v
		return nil
	}
}

func (e *encoder) double(n protowire.Number, v float64) {
	if v != 0 || math.Signbit(v) {
		e.tag(n, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, math.Float64bits(v))
	}
}

// packed writes a repeated scalar field the proto3 way, as one run.
func (e *encoder) packed(n protowire.Number, vs []uint64) {
	if len(vs) == 0 {
		return
	}
	var run []byte
	for _, v := range vs {
		run = protowire.AppendVarint(run, v)
	}
	e.tag(n, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, run)
}
