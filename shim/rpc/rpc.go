// Package rpc speaks ttrpc, the protocol containerd talks to its shims in:
// a server for the task service and a client for forwarding events, unary
// calls only, which is all either needs.
//
// A frame is a 10-byte header (payload length and stream id, big-endian
// uint32s; a type byte: 1 request, 2 response, 3 data; a flags byte) and a
// protobuf payload: ttrpc's Request (service, method, payload, timeout,
// metadata) or Response (a google.rpc.Status and the payload), encoded by
// package wire. Clients number their streams with odd ids; a response
// carries its request's id.
//
// Why not the ttrpc library: it encodes through protobuf's reflection
// runtime, whose per-type tables and the per-connection buffers and
// goroutines it keeps would be most of an idle shim's heap (see package
// wire). This server holds, per connection, one goroutine reading frames
// and no buffer between frames.
package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/containerd/errdefs"
)

// Frame types and limits, as ttrpc defines them.
const (
	typeRequest  = 1
	typeResponse = 2

	headerLength = 10
	// MaxMessage is the largest payload a frame may carry (ttrpc's limit).
	MaxMessage = 4 << 20
)

// Codes are gRPC's status codes, the ones the shim sends or reads.
const (
	CodeOK                 = 0
	CodeCanceled           = 1
	CodeUnknown            = 2
	CodeInvalidArgument    = 3
	CodeDeadlineExceeded   = 4
	CodeNotFound           = 5
	CodeAlreadyExists      = 6
	CodePermissionDenied   = 7
	CodeResourceExhausted  = 8
	CodeFailedPrecondition = 9
	CodeAborted            = 10
	CodeOutOfRange         = 11
	CodeUnimplemented      = 12
	CodeInternal           = 13
	CodeUnavailable        = 14
	CodeDataLoss           = 15
	CodeUnauthenticated    = 16
)

type header struct {
	length uint32
	stream uint32
	typ    byte
	flags  byte
}

// errTooLarge is a frame whose payload exceeds MaxMessage; it was skipped.
var errTooLarge = errors.New("message too large")

// readFrame reads one frame into a new buffer. A frame over MaxMessage is
// read past and reported as errTooLarge, with its header, so that the
// stream can be answered and the connection kept.
func readFrame(r io.Reader, hb *[headerLength]byte) (header, []byte, error) {
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return header{}, nil, err
	}
	h := header{
		length: binary.BigEndian.Uint32(hb[0:4]),
		stream: binary.BigEndian.Uint32(hb[4:8]),
		typ:    hb[8],
		flags:  hb[9],
	}
	if h.length > MaxMessage {
		if _, err := io.CopyN(io.Discard, r, int64(h.length)); err != nil {
			return h, nil, err
		}
		return h, nil, errTooLarge
	}
	p := make([]byte, h.length)
	if _, err := io.ReadFull(r, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// frame makes a whole frame, so that it goes out in one write.
func frame(stream uint32, typ byte, payload []byte) []byte {
	b := make([]byte, headerLength+len(payload))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:8], stream)
	b[8] = typ
	copy(b[headerLength:], payload)
	return b
}

// Error is a call's failure as the wire carries it: a gRPC status code and
// a message. Unwrap gives the errdefs kind of the code, so that errdefs.Is*
// works on what a client receives.
type Error struct {
	Code    int32
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("ttrpc: code %d: %s", e.Code, e.Message) }

func (e *Error) Unwrap() error { return kindOf(e.Code) }

// Errorf makes an Error.
func Errorf(code int32, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// status is the code and message that err goes out as: an *Error as it is,
// an errdefs kind (or a context error) as its code, anything else Unknown;
// the message is err's text, as containerd's errgrpc sends it (containerd
// strips the kind's suffix again when it makes an error of it).
func status(err error) (int32, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Message
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.code, err.Error()
		}
	}
	return CodeUnknown, err.Error()
}

// kinds maps errdefs kinds to codes as containerd's errgrpc does, most
// specific first.
var kinds = []struct {
	err  error
	code int32
}{
	{errdefs.ErrInvalidArgument, CodeInvalidArgument},
	{errdefs.ErrNotFound, CodeNotFound},
	{errdefs.ErrAlreadyExists, CodeAlreadyExists},
	{errdefs.ErrPermissionDenied, CodePermissionDenied},
	{errdefs.ErrResourceExhausted, CodeResourceExhausted},
	{errdefs.ErrFailedPrecondition, CodeFailedPrecondition},
	{errdefs.ErrConflict, CodeFailedPrecondition},
	{errdefs.ErrNotModified, CodeFailedPrecondition},
	{errdefs.ErrAborted, CodeAborted},
	{errdefs.ErrOutOfRange, CodeOutOfRange},
	{errdefs.ErrNotImplemented, CodeUnimplemented},
	{errdefs.ErrInternal, CodeInternal},
	{errdefs.ErrUnavailable, CodeUnavailable},
	{errdefs.ErrDataLoss, CodeDataLoss},
	{errdefs.ErrUnauthenticated, CodeUnauthenticated},
	{context.DeadlineExceeded, CodeDeadlineExceeded},
	{context.Canceled, CodeCanceled},
	{errdefs.ErrUnknown, CodeUnknown},
	// Plain file system errors, as the ttrpc library's server codes them.
	{fs.ErrNotExist, CodeNotFound},
	{fs.ErrExist, CodeAlreadyExists},
	{fs.ErrPermission, CodePermissionDenied},
}

// kindOf is the errdefs kind of a code (nil for codes without one): the
// first entry of kinds with that code.
func kindOf(code int32) error {
	for _, k := range kinds {
		if k.code == code {
			return k.err
		}
	}
	return nil
}
