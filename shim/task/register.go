package task

import (
	"context"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"

	"github.com/berth-project/berth/shim/rpc"
	"github.com/berth-project/berth/shim/wire"
)

// The names the task service is served under: containerd uses v3 when the
// bootstrap reply says version 3 (containerd 2.x), v2 otherwise.
const (
	ServiceV2 = "containerd.task.v2.Task"
	ServiceV3 = "containerd.task.v3.Task"
)

// Register serves svc on srv as both containerd.task.v2.Task and
// containerd.task.v3.Task, through one table of methods.
//
// The two services are the same protobuf messages under two package names
// (TestV3IsV2 checks it field by field), and the package name never goes
// on the wire: ttrpc carries the service and method names and the encoded
// messages. So a v3 request decodes into the v2 Go types and the v2
// response encodes as the v3 one. The v3 Go package is not linked: it
// carries gRPC stubs, which would add all of gRPC to the binary that every
// shim maps.
func Register(srv *rpc.Server, svc taskapi.TTRPCTaskService) {
	methods := map[string]rpc.Handler{
		"State":      method(svc.State),
		"Create":     method(svc.Create),
		"Start":      method(svc.Start),
		"Delete":     method(svc.Delete),
		"Pids":       method(svc.Pids),
		"Pause":      method(svc.Pause),
		"Resume":     method(svc.Resume),
		"Checkpoint": method(svc.Checkpoint),
		"Kill":       method(svc.Kill),
		"Exec":       method(svc.Exec),
		"ResizePty":  method(svc.ResizePty),
		"CloseIO":    method(svc.CloseIO),
		"Update":     method(svc.Update),
		"Wait":       method(svc.Wait),
		"Stats":      method(svc.Stats),
		"Connect":    method(svc.Connect),
		"Shutdown":   method(svc.Shutdown),
	}
	srv.Register(ServiceV2, methods)
	srv.Register(ServiceV3, methods)
}

// method makes a ttrpc method of a handler: it decodes the request into a
// new Req, calls the handler and encodes its response (package wire).
func method[Req, Resp any](handler func(context.Context, *Req) (Resp, error)) rpc.Handler {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		req := new(Req)
		if err := wire.Decode(payload, req); err != nil {
			return nil, rpc.Errorf(rpc.CodeInvalidArgument, "%v", err)
		}
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, err
		}
		return wire.Encode(resp)
	}
}
