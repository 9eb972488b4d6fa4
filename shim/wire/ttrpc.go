package wire

import "google.golang.org/protobuf/encoding/protowire"

// Request is ttrpc's request frame (ttrpc's Request message).
type Request struct {
	Service, Method string
	Payload         []byte
	TimeoutNano     int64
	Metadata        []KeyValue
}

// KeyValue is one metadata entry of a request.
type KeyValue struct{ Key, Value string }

// Response is ttrpc's response frame: a google.rpc.Status (without its
// details, which the shim neither sends nor reads) and the payload.
type Response struct {
	Code    int32 // a gRPC status code; 0 is success
	Message string
	Payload []byte
}

// EncodeRequest encodes r.
func EncodeRequest(r *Request) []byte {
	var e encoder
	e.str(1, r.Service)
	e.str(2, r.Method)
	e.bytes(3, r.Payload)
	e.int(4, r.TimeoutNano)
	for _, kv := range r.Metadata {
		e.message(5, func(e *encoder) {
			e.str(1, kv.Key)
			e.str(2, kv.Value)
		})
	}
	return e.b
}

// DecodeRequest decodes a request frame; the payload aliases b.
func DecodeRequest(b []byte) (*Request, error) {
	r := &Request{}
	err := fields(b, func(f field) error {
		switch f.num {
		case 1:
			f.str(&r.Service)
		case 2:
			f.str(&r.Method)
		case 3:
			if f.typ == protowire.BytesType {
				r.Payload = f.b
			}
		case 4:
			f.int64(&r.TimeoutNano)
		case 5:
			return f.message(func(b []byte) error {
				var kv KeyValue
				err := fields(b, func(f field) error {
					switch f.num {
					case 1:
						f.str(&kv.Key)
					case 2:
						f.str(&kv.Value)
					}
					return nil
				})
				r.Metadata = append(r.Metadata, kv)
				return err
			})
		}
		return nil
	})
	return r, err
}

// EncodeResponse encodes r. The status is always present, as ttrpc's
// server sends it.
func EncodeResponse(r *Response) []byte {
	var e encoder
	e.message(1, func(e *encoder) {
		e.int(1, int64(r.Code))
		e.str(2, r.Message)
	})
	e.bytes(2, r.Payload)
	return e.b
}

// DecodeResponse decodes a response frame; the payload aliases b.
func DecodeResponse(b []byte) (*Response, error) {
	r := &Response{}
	err := fields(b, func(f field) error {
		switch f.num {
		case 1:
			return f.message(func(b []byte) error {
				return fields(b, func(f field) error {
					switch f.num {
					case 1:
						f.int32(&r.Code)
					case 2:
						f.str(&r.Message)
					}
					return nil
				})
			})
		case 2:
			if f.typ == protowire.BytesType {
				r.Payload = f.b
			}
		}
		return nil
	})
	return r, err
}
