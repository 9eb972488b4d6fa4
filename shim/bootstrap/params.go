package bootstrap

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Form is the form of the reply that the manager running `start` reads.
// containerd has used three, and tells which by what it sends:
//
//   - FormAddress (containerd 1.6 and before): no MAX_SHIM_VERSION in the
//     environment, the runtime options (if any) on stdin as a protobuf
//     google.protobuf.Any; it reads the address as text.
//   - FormJSON (containerd 1.7 to 2.2): MAX_SHIM_VERSION=2 in the
//     environment, the options on stdin as before; it reads
//     {"version":…,"address":…,"protocol":"ttrpc"}, where version is the task
//     API it will use. 1.7 refuses a version above 2, 2.x takes 2 or 3, and
//     both send MAX_SHIM_VERSION=2, so the reply says
//     min(MAX_SHIM_VERSION, 3): 2 for all of them.
//   - FormProto (containerd 2.3 and later): a protobuf
//     containerd.runtime.bootstrap.v1.BootstrapParams on stdin, whose
//     instance_id and namespace repeat -id and -namespace (the runtime
//     options of the older forms decode as a BootstrapParams too, so this
//     is how they are told apart), and the options among its extensions;
//     it reads a protobuf BootstrapResult, which says task API 3.
type Form int

const (
	FormAddress Form = iota
	FormJSON
	FormProto
)

func (f Form) String() string {
	return [...]string{"address", "json", "protobuf"}[f]
}

// Task API versions a reply can announce: containerd.task.v2.Task or
// containerd.task.v3.Task (the shim serves both).
const (
	TaskV2 = 2
	TaskV3 = 3
)

// Environment variables containerd passes to `start`.
const (
	EnvMaxShimVersion = "MAX_SHIM_VERSION"
	EnvTTRPCAddress   = "TTRPC_ADDRESS"
	EnvGRPCAddress    = "GRPC_ADDRESS"
)

// maxInput bounds what start reads from stdin.
const maxInput = 4 << 20

// Params are what the manager told `start` besides the flags, whichever
// form it used.
type Params struct {
	Form    Form
	Version int        // the task API version the reply announces
	Options *anypb.Any // the runtime options, nil if none were sent

	SocketDir    string // where to put the socket; "" means SocketDir
	TTRPCAddress string // containerd's ttrpc socket, for events
	GRPCAddress  string // containerd's gRPC socket
	Debug        bool   // the manager asked for debug logging
}

// ReadParams reads what the manager sent to `start` on stdin (nil for
// nothing) and in the environment (getenv); id and namespace are the -id
// and -namespace flags.
func ReadParams(stdin io.Reader, getenv func(string) string, id, namespace string) (*Params, error) {
	var in []byte
	if stdin != nil {
		var err error
		if in, err = io.ReadAll(io.LimitReader(stdin, maxInput)); err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
	}
	if bp, ok := bootstrapParams(in, id, namespace); ok {
		p := &Params{
			Form:         FormProto,
			Version:      TaskV3,
			SocketDir:    bp.GetSocketDir(),
			TTRPCAddress: bp.GetContainerdTtrpcAddress(),
			GRPCAddress:  bp.GetContainerdGrpcAddress(),
			Debug:        bp.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG,
		}
		for _, ext := range bp.GetExtensions() {
			if isRuntimeOptions(ext.GetValue()) {
				p.Options = ext.GetValue()
				break
			}
		}
		return p, nil
	}
	p := &Params{Form: FormAddress, Version: TaskV2, TTRPCAddress: getenv(EnvTTRPCAddress), GRPCAddress: getenv(EnvGRPCAddress)}
	if max, err := strconv.Atoi(getenv(EnvMaxShimVersion)); err == nil && max >= TaskV2 {
		p.Form, p.Version = FormJSON, min(max, TaskV3)
	}
	if len(in) > 0 {
		var opts anypb.Any
		if err := proto.Unmarshal(in, &opts); err != nil {
			return nil, fmt.Errorf("stdin holds neither this task's BootstrapParams nor runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		p.Options = &opts
	}
	return p, nil
}

// bootstrapParams decodes containerd 2.3's BootstrapParams, if that is what
// in holds. A runtime options Any decodes as one too (its type URL as the
// instance id, its value as the namespace), so the identity must match the
// flags.
func bootstrapParams(in []byte, id, namespace string) (*bootapi.BootstrapParams, bool) {
	if len(in) == 0 {
		return nil, false
	}
	var bp bootapi.BootstrapParams
	if proto.Unmarshal(in, &bp) != nil || bp.GetInstanceID() != id || bp.GetNamespace() != namespace {
		return nil, false
	}
	return &bp, true
}

// isRuntimeOptions tells the runtime options among BootstrapParams'
// extensions: the types the shim reads them as.
func isRuntimeOptions(a *anypb.Any) bool {
	return a.MessageIs(&options.Options{}) || a.MessageIs(&runtimeoptions.Options{})
}

// ShimCgroup is the runc option that names the cgroup to put the shim in,
// "" if the options set none.
func (p *Params) ShimCgroup() (string, error) {
	var o options.Options
	if p.Options == nil || !p.Options.MessageIs(&o) {
		return "", nil
	}
	if err := proto.Unmarshal(p.Options.GetValue(), &o); err != nil {
		return "", fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return o.GetShimCgroup(), nil
}

// Reply is what `start` writes on stdout for the manager: the shim's
// address in the manager's form.
func (p *Params) Reply(address string) ([]byte, error) {
	switch p.Form {
	case FormProto:
		return proto.Marshal(&bootapi.BootstrapResult{Version: int32(p.Version), Address: address, Protocol: "ttrpc"})
	case FormJSON:
		return json.Marshal(jsonReply{Version: p.Version, Address: address, Protocol: "ttrpc"})
	}
	return []byte(address), nil
}

// jsonReply is the JSON form of the reply (containerd 1.7 to 2.2).
type jsonReply struct {
	Version  int    `json:"version"`
	Address  string `json:"address"`
	Protocol string `json:"protocol"`
}
