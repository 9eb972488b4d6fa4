package wire

import (
	"math/rand/v2"
	"testing"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/ttrpc"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The messages containerd sends the shim (decoded here) and the ones the
// shim sends back (encoded here).
var (
	decoded = []proto.Message{
		&taskapi.CreateTaskRequest{}, &taskapi.ExecProcessRequest{}, &taskapi.UpdateTaskRequest{},
		&taskapi.CheckpointTaskRequest{}, &taskapi.KillRequest{}, &taskapi.ResizePtyRequest{},
		&taskapi.CloseIORequest{}, &taskapi.ShutdownRequest{}, &taskapi.StartRequest{},
		&taskapi.DeleteRequest{}, &taskapi.StateRequest{}, &taskapi.WaitRequest{},
		&taskapi.PidsRequest{}, &taskapi.PauseRequest{}, &taskapi.ResumeRequest{},
		&taskapi.StatsRequest{}, &taskapi.ConnectRequest{}, &options.Options{}, &runtimeoptions.Options{},
	}
	encoded = []proto.Message{
		&emptypb.Empty{}, &taskapi.CreateTaskResponse{}, &taskapi.StartResponse{},
		&taskapi.DeleteResponse{}, &taskapi.StateResponse{}, &taskapi.PidsResponse{},
		&taskapi.WaitResponse{}, &taskapi.StatsResponse{}, &taskapi.ConnectResponse{},
		&options.ProcessDetails{},
		&eventstypes.TaskCreate{}, &eventstypes.TaskStart{}, &eventstypes.TaskDelete{},
		&eventstypes.TaskExit{}, &eventstypes.TaskOOM{}, &eventstypes.TaskExecAdded{},
		&eventstypes.TaskExecStarted{}, &eventstypes.TaskPaused{}, &eventstypes.TaskResumed{},
		&eventstypes.TaskCheckpointed{}, &v1.Metrics{}, &v2.Metrics{},
	}
)

// TestDecodeAsProtobuf decodes what protobuf encodes, for messages with
// every field set (nested messages, repeated fields and maps included) and
// with none, and expects the same message back.
func TestDecodeAsProtobuf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, proto0 := range decoded {
		for i := range 50 {
			m := proto0.ProtoReflect().New()
			if i > 0 {
				fill(r, m, 0)
			}
			b, err := proto.Marshal(m.Interface())
			if err != nil {
				t.Fatal(err)
			}
			got := proto0.ProtoReflect().New().Interface()
			if err := Decode(b, got); err != nil {
				t.Fatalf("%T: %v", got, err)
			}
			if !proto.Equal(got, m.Interface()) {
				t.Fatalf("%T decoded as\n%v\nwant\n%v", got, got, m.Interface())
			}
		}
	}
}

// TestEncodeAsProtobuf has protobuf decode what Encode writes.
func TestEncodeAsProtobuf(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, proto0 := range encoded {
		for i := range 50 {
			m := proto0.ProtoReflect().New()
			if i > 0 {
				fill(r, m, 0)
			}
			b, err := Encode(m.Interface())
			if err != nil {
				t.Fatal(err)
			}
			got := proto0.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("%T: %v", got, err)
			}
			if !proto.Equal(got, m.Interface()) {
				t.Fatalf("%T encoded as\n%v\nwant\n%v", got, got, m.Interface())
			}
		}
	}
}

// TestTypeURL names each message that goes out in an Any as protobuf does.
func TestTypeURL(t *testing.T) {
	for _, m := range encoded {
		_, event := m.(interface{ GetContainerID() string })
		switch m.(type) {
		case *v1.Metrics, *v2.Metrics, *options.ProcessDetails:
		default:
			if !event {
				if got := TypeURL(m); got != "" {
					t.Errorf("%T has the type URL %q", m, got)
				}
				continue
			}
		}
		if got, want := TypeURL(m), string(m.ProtoReflect().Descriptor().FullName()); got != want {
			t.Errorf("%T: type URL %q, want %q", m, got, want)
		}
	}
}

func TestForwardRequest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		env := &types.Envelope{}
		fill(r, env.ProtoReflect(), 0)
		var got eventsapi.ForwardRequest
		if err := proto.Unmarshal(ForwardRequest(env), &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Envelope, env) {
			t.Fatalf("envelope forwarded as %v, want %v", got.Envelope, env)
		}
	}
}

// TestFrames checks ttrpc's request and response frames against the ttrpc
// library's messages.
func TestFrames(t *testing.T) {
	req := &Request{Service: "s", Method: "m", Payload: []byte{0, 1}, TimeoutNano: 5e9,
		Metadata: []KeyValue{{"k", "v"}, {"k", "w"}, {"", ""}}}
	var lreq ttrpc.Request
	if err := proto.Unmarshal(EncodeRequest(req), &lreq); err != nil {
		t.Fatal(err)
	}
	md := lreq.Metadata
	if lreq.Service != "s" || lreq.Method != "m" || string(lreq.Payload) != "\x00\x01" || lreq.TimeoutNano != 5e9 ||
		len(md) != 3 || md[0].Key != "k" || md[0].Value != "v" || md[1].Value != "w" || md[2].Key != "" {
		t.Errorf("request read by ttrpc as %v", &lreq)
	}
	b, err := proto.Marshal(&lreq)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Service != "s" || back.Method != "m" || string(back.Payload) != "\x00\x01" || back.TimeoutNano != 5e9 || len(back.Metadata) != 3 || back.Metadata[1] != (KeyValue{"k", "w"}) {
		t.Errorf("ttrpc's request decoded as %+v", back)
	}

	for _, resp := range []*Response{{Payload: []byte("x")}, {Code: 5, Message: "not found"}, {Code: -1}} {
		var lresp ttrpc.Response
		if err := proto.Unmarshal(EncodeResponse(resp), &lresp); err != nil {
			t.Fatal(err)
		}
		if lresp.Status == nil || lresp.Status.Code != resp.Code || lresp.Status.Message != resp.Message || string(lresp.Payload) != string(resp.Payload) {
			t.Errorf("response %+v read by ttrpc as %v", resp, &lresp)
		}
		b, err := proto.Marshal(&ttrpc.Response{Status: &status.Status{Code: resp.Code, Message: resp.Message}, Payload: resp.Payload})
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.Code != resp.Code || back.Message != resp.Message || string(back.Payload) != string(resp.Payload) {
			t.Errorf("ttrpc's response %+v decoded as %+v", resp, back)
		}
	}
}

// TestBadInput: truncated and corrupt messages give errors, not panics or
// silently partial messages.
func TestBadInput(t *testing.T) {
	full, err := proto.Marshal(&taskapi.CreateTaskRequest{ID: "c", Bundle: "/b", Rootfs: []*types.Mount{{Type: "overlay", Options: []string{"a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(full); n++ {
		if protoErr := proto.Unmarshal(full[:n], &taskapi.CreateTaskRequest{}); protoErr == nil {
			continue // a prefix that is itself a whole message
		}
		if err := Decode(full[:n], &taskapi.CreateTaskRequest{}); err == nil {
			t.Errorf("the first %d of %d bytes decoded without an error", n, len(full))
		}
	}
	for _, b := range [][]byte{{0xff}, {0x0a, 0x80}, {0x0b}, {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if err := Decode(b, &taskapi.StateRequest{}); err == nil {
			t.Errorf("% x decoded without an error", b)
		}
		if _, err := DecodeRequest(b); err == nil {
			t.Errorf("% x decoded as a request without an error", b)
		}
	}
	if err := Decode(nil, &types.Mount{}); err == nil {
		t.Error("decoding a type wire does not know gave no error")
	}
}

// TestWrongWireTypes: a field that arrives with another wire type than its
// own is skipped, as protobuf skips it (no empty element appended to a
// repeated field, no value taken).
func TestWrongWireTypes(t *testing.T) {
	var b []byte
	for num := protowire.Number(1); num <= 10; num++ {
		b = protowire.AppendTag(b, num, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		b = protowire.AppendTag(b, num, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, 1)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "id")
	var want, got taskapi.CreateTaskRequest
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if err := Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, &want) {
		t.Errorf("decoded as %v, want %v", &got, &want)
	}
	r, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Service != "id" || r.Method != "" || r.Payload != nil || len(r.Metadata) != 0 || r.TimeoutNano != 1 {
		t.Errorf("request decoded as %+v", r)
	}
}

// fill sets every field of m to random values; nested messages to depth 3.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range r.IntN(3) + 1 {
				mp.Set(scalar(r, fd.MapKey()).MapKey(), scalar(r, fd.MapValue()))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range r.IntN(3) + 1 {
				if fd.Message() != nil {
					e := l.NewElement()
					if depth < 3 {
						fill(r, e.Message(), depth+1)
					}
					l.Append(e)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.Message() != nil:
			sub := m.Mutable(fd).Message()
			if depth < 3 && r.IntN(4) > 0 { // sometimes set but empty
				fill(r, sub, depth+1)
			}
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		const letters = "abc/é世 \x00"
		rs := []rune(letters)
		s := make([]rune, r.IntN(12))
		for i := range s {
			s[i] = rs[r.IntN(len(rs))]
		}
		return protoreflect.ValueOfString(string(s))
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 1)
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(r.Uint32())
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(int32(r.Uint32()))
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(int64(r.Uint64()))
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(r.Uint64())
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(r.Float64()*1e3 - 500)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(r.Uint32())))
	}
	panic("fill: no random value for " + fd.Kind().String())
}
