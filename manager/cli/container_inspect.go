package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

// ContainerInspectOptions are the flags of `berth inspect` and `berth
// container inspect`.
type ContainerInspectOptions struct {
	Format string
	Type   string // "", "container" or "image"
	Size   bool
}

// containerJSON is docker's container inspect object, as far as berth
// knows its fields.
type containerJSON struct {
	ID              string              `json:"Id"`
	Created         string              `json:"Created"`
	Path            string              `json:"Path"`
	Args            []string            `json:"Args"`
	State           containerStateJSON  `json:"State"`
	Image           string              `json:"Image"`
	ResolvConfPath  string              `json:"ResolvConfPath"`
	HostnamePath    string              `json:"HostnamePath"`
	HostsPath       string              `json:"HostsPath"`
	LogPath         string              `json:"LogPath"`
	Name            string              `json:"Name"`
	RestartCount    int32               `json:"RestartCount"`
	Driver          string              `json:"Driver"`
	Platform        string              `json:"Platform"`
	SizeRw          *int64              `json:"SizeRw,omitempty"`
	SizeRootFs      *int64              `json:"SizeRootFs,omitempty"`
	Mounts          []mountJSON         `json:"Mounts"`
	Config          containerConfigJSON `json:"Config"`
	HostConfig      hostConfigJSON      `json:"HostConfig"`
	NetworkSettings networkSettingsJSON `json:"NetworkSettings"`
	GraphDriver     inspectDriver       `json:"GraphDriver"`
	AppArmorProfile string              `json:"AppArmorProfile"`
	ExecIDs         []string            `json:"ExecIDs"`
}

type containerStateJSON struct {
	Status     string `json:"Status"`
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Restarting bool   `json:"Restarting"`
	OOMKilled  bool   `json:"OOMKilled"`
	Dead       bool   `json:"Dead"`
	Pid        int32  `json:"Pid"`
	ExitCode   int32  `json:"ExitCode"`
	Error      string `json:"Error"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`
}

type mountJSON struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}

type containerConfigJSON struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int32              `json:"StopTimeout,omitempty"`
}

type portBindingJSON struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

type restartPolicyJSON struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

type hostConfigJSON struct {
	Binds          []string                     `json:"Binds"`
	NetworkMode    string                       `json:"NetworkMode"`
	PortBindings   map[string][]portBindingJSON `json:"PortBindings"`
	RestartPolicy  restartPolicyJSON            `json:"RestartPolicy"`
	AutoRemove     bool                         `json:"AutoRemove"`
	CapAdd         []string                     `json:"CapAdd"`
	CapDrop        []string                     `json:"CapDrop"`
	DNS            []string                     `json:"Dns"`
	Privileged     bool                         `json:"Privileged"`
	ReadonlyRootfs bool                         `json:"ReadonlyRootfs"`
	ShmSize        int64                        `json:"ShmSize"`
	Sysctls        map[string]string            `json:"Sysctls,omitempty"`
	Tmpfs          map[string]string            `json:"Tmpfs,omitempty"`
	Memory         int64                        `json:"Memory"`
	MemorySwap     int64                        `json:"MemorySwap"`
	NanoCpus       int64                        `json:"NanoCpus"`
	CPUShares      int64                        `json:"CpuShares"`
	PidsLimit      *int64                       `json:"PidsLimit"`
	Mounts         []mountSpecJSON              `json:"Mounts,omitempty"`
}

type mountSpecJSON struct {
	Type     string `json:"Type"`
	Source   string `json:"Source"`
	Target   string `json:"Target"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
}

type networkSettingsJSON struct {
	Bridge      string                       `json:"Bridge"`
	SandboxID   string                       `json:"SandboxID"`
	SandboxKey  string                       `json:"SandboxKey"`
	Ports       map[string][]portBindingJSON `json:"Ports"`
	Gateway     string                       `json:"Gateway"`
	IPAddress   string                       `json:"IPAddress"`
	IPPrefixLen int32                        `json:"IPPrefixLen"`
	MacAddress  string                       `json:"MacAddress"`
	Networks    map[string]endpointJSON      `json:"Networks"`
}

type endpointJSON struct {
	Gateway     string `json:"Gateway"`
	IPAddress   string `json:"IPAddress"`
	IPPrefixLen int32  `json:"IPPrefixLen"`
	MacAddress  string `json:"MacAddress"`
}

// timeString is a time as docker's inspect writes it; unset is the zero
// time, "0001-01-01T00:00:00Z".
func timeString(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return time.Time{}.Format(time.RFC3339Nano)
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// portKey is docker's "80/tcp".
func portKey(p *containersv1.PortBinding) string {
	proto := p.GetProtocol()
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%d/%s", p.GetContainerPort(), proto)
}

func portMap(ports []*containersv1.PortBinding) map[string][]portBindingJSON {
	out := map[string][]portBindingJSON{}
	for _, p := range ports {
		k := portKey(p)
		if p.GetHostPort() == 0 && p.GetHostIp() == "" {
			if _, ok := out[k]; !ok {
				out[k] = nil
			}
			continue
		}
		hp := ""
		if p.GetHostPort() != 0 {
			hp = strconv.Itoa(int(p.GetHostPort()))
		}
		out[k] = append(out[k], portBindingJSON{HostIP: p.GetHostIp(), HostPort: hp})
	}
	return out
}

// toContainerJSON is a container as docker's inspect shows it.
func toContainerJSON(ct *containersv1.Container, size bool) containerJSON {
	cfg, st, net := ct.GetConfig(), ct.GetState(), ct.GetNetwork()
	status := st.GetStatus()
	// Path and Args: the process's command line, entrypoint then cmd.
	argv := append(append([]string{}, cfg.GetEntrypoint()...), cfg.GetCmd()...)
	var path string
	args := []string{}
	if len(argv) > 0 {
		path, args = argv[0], argv[1:]
	}
	out := containerJSON{
		ID:      ct.GetId(),
		Created: timeString(ct.GetCreated()),
		Path:    path,
		Args:    args,
		State: containerStateJSON{
			Status: status, Running: status == "running" || status == "paused" || status == "restarting",
			Paused: status == "paused", Restarting: status == "restarting", OOMKilled: st.GetOomKilled(),
			Dead: status == "dead", Pid: st.GetPid(), ExitCode: st.GetExitCode(), Error: st.GetError(),
			StartedAt: timeString(st.GetStartedAt()), FinishedAt: timeString(st.GetFinishedAt()),
		},
		Image:          ct.GetImageId(),
		ResolvConfPath: ct.GetResolvConfPath(),
		HostnamePath:   ct.GetHostnamePath(),
		HostsPath:      ct.GetHostsPath(),
		LogPath:        ct.GetLogPath(),
		Name:           "/" + strings.TrimPrefix(ct.GetName(), "/"),
		RestartCount:   ct.GetRestartCount(),
		Driver:         "overlayfs",
		Platform:       "linux",
		Mounts:         []mountJSON{},
		ExecIDs:        nil,
		Config: containerConfigJSON{
			Hostname: cfg.GetHostname(), User: cfg.GetUser(),
			AttachStdin: cfg.GetOpenStdin() && cfg.GetStdinOnce(), AttachStdout: true, AttachStderr: true,
			Tty: cfg.GetTty(), OpenStdin: cfg.GetOpenStdin(), StdinOnce: cfg.GetStdinOnce(),
			Env: cfg.GetEnv(), Cmd: cfg.GetCmd(), Image: cfg.GetImage(), WorkingDir: cfg.GetWorkingDir(),
			Entrypoint: cfg.GetEntrypoint(), Labels: cfg.GetLabels(), StopSignal: cfg.GetStopSignal(),
		},
		HostConfig: hostConfigJSON{
			NetworkMode:    cfg.GetNetworkMode(),
			PortBindings:   portMap(cfg.GetPorts()),
			AutoRemove:     cfg.GetAutoRemove(),
			CapAdd:         cfg.GetCapAdd(),
			CapDrop:        cfg.GetCapDrop(),
			DNS:            nonNil(cfg.GetDns()),
			Privileged:     cfg.GetPrivileged(),
			ReadonlyRootfs: cfg.GetReadOnly(),
			ShmSize:        cfg.GetShmSize(),
			Sysctls:        cfg.GetSysctls(),
			Memory:         cfg.GetMemory(),
			MemorySwap:     cfg.GetMemorySwap(),
			NanoCpus:       cfg.GetNanoCpus(),
			CPUShares:      cfg.GetCpuShares(),
		},
		NetworkSettings: networkSettingsJSON{
			SandboxKey:  net.GetSandboxKey(),
			Ports:       portMap(net.GetPorts()),
			Gateway:     net.GetGateway(),
			IPAddress:   net.GetIpAddress(),
			IPPrefixLen: net.GetIpPrefixLen(),
			MacAddress:  net.GetMacAddress(),
			Networks:    map[string]endpointJSON{},
		},
		GraphDriver: inspectDriver{Name: "overlayfs", Data: map[string]string{}},
	}
	if ct.GetRootfs() != "" {
		out.GraphDriver.Data["MergedDir"] = ct.GetRootfs()
	}
	if t := cfg.GetStopTimeout(); t != 0 {
		out.Config.StopTimeout = &t
	}
	if p := cfg.GetPidsLimit(); p != 0 {
		out.HostConfig.PidsLimit = &p
	}
	name, count, _ := strings.Cut(cfg.GetRestartPolicy(), ":")
	if name == "" {
		name = "no"
	}
	out.HostConfig.RestartPolicy.Name = name
	out.HostConfig.RestartPolicy.MaximumRetryCount, _ = strconv.Atoi(count)
	if n := net.GetNetwork(); n != "" {
		out.NetworkSettings.Networks[n] = endpointJSON{
			Gateway: net.GetGateway(), IPAddress: net.GetIpAddress(), IPPrefixLen: net.GetIpPrefixLen(), MacAddress: net.GetMacAddress(),
		}
	}
	for _, m := range cfg.GetMounts() {
		mode := "rw"
		if m.GetReadOnly() {
			mode = "ro"
		}
		mj := mountJSON{Type: m.GetType(), Source: m.GetSource(), Destination: m.GetDestination(), RW: !m.GetReadOnly()}
		switch m.GetType() {
		case "bind":
			mj.Mode = mode
			mj.Propagation = "rprivate"
			for _, o := range m.GetOptions() {
				if strings.Contains(o, "private") || strings.Contains(o, "shared") || strings.Contains(o, "slave") {
					mj.Propagation = o
				}
			}
			out.HostConfig.Binds = append(out.HostConfig.Binds, m.GetSource()+":"+m.GetDestination()+":"+mode)
		case "volume":
			mj.Name = m.GetSource()
			mj.Mode = "z"
			out.HostConfig.Binds = append(out.HostConfig.Binds, m.GetSource()+":"+m.GetDestination())
		case "tmpfs":
			if out.HostConfig.Tmpfs == nil {
				out.HostConfig.Tmpfs = map[string]string{}
			}
			out.HostConfig.Tmpfs[m.GetDestination()] = strings.Join(m.GetOptions(), ",")
			continue // docker lists --tmpfs in HostConfig only
		}
		out.Mounts = append(out.Mounts, mj)
	}
	for _, p := range cfg.GetPorts() {
		if out.Config.ExposedPorts == nil {
			out.Config.ExposedPorts = map[string]struct{}{}
		}
		out.Config.ExposedPorts[portKey(p)] = struct{}{}
	}
	if size {
		rw := ct.GetSizeRw()
		out.SizeRw = &rw
		out.SizeRootFs = &rw
	}
	return out
}

// Inspect writes containers (or, as docker's generic inspect, images
// when no container has the name) as a JSON array or through a --format
// template.
func (cli *CLI) Inspect(ctx context.Context, names []string, opts ContainerInspectOptions) error {
	switch opts.Type {
	case "", "container", "image":
	default:
		return &UsageError{Err: fmt.Errorf("%q is not a valid value for --type", opts.Type)}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.inspectEach(names, opts.Format, func(n string) (any, error) {
		if opts.Type != "image" {
			resp, err := c.Containers().Get(ctx, &containersv1.GetRequest{Id: n, Size: opts.Size})
			if err == nil {
				return toContainerJSON(resp.GetContainer(), opts.Size), nil
			}
			if opts.Type == "container" || !errdefs.IsNotFound(err) {
				return nil, err
			}
		}
		resp, err := c.Images().Get(ctx, &imagesv1.GetRequest{Name: n})
		if err == nil {
			return toInspect(resp.GetImage()), nil
		}
		if opts.Type == "" && errdefs.IsNotFound(err) {
			err = fmt.Errorf("Error: No such object: %s", n)
		}
		return nil, err
	})
}

// inspectEach looks each name up with get and writes what was found as
// writeInspect does; the names not found are reported after the others,
// and make the command fail.
func (cli *CLI) inspectEach(names []string, format string, get func(name string) (any, error)) error {
	var (
		found []any
		errs  []error
	)
	for _, n := range names {
		v, err := get(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found = append(found, v)
	}
	if err := cli.writeInspect(found, format); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// writeInspect writes objects as docker's inspect: an indented JSON
// array, or each through a template.
func (cli *CLI) writeInspect(found []any, format string) error {
	if format == "" {
		if found == nil {
			found = []any{}
		}
		b, err := json.MarshalIndent(found, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintln(cli.Out, string(b))
		return nil
	}
	for _, v := range found {
		var buf bytes.Buffer
		err := one(&buf, format, v)
		if err != nil {
			// As docker: a template written against the JSON's keys
			// ({{.Id}}, not {{.ID}}) runs on the JSON itself.
			if raw, rerr := rawJSON(v); rerr == nil {
				buf.Reset()
				if one(&buf, format, raw) == nil {
					err = nil
				}
			}
		}
		if err != nil {
			var st *StatusError
			if errors.As(err, &st) {
				return errors.New(st.Msg)
			}
			return err
		}
		if _, err := buf.WriteTo(cli.Out); err != nil {
			return err
		}
	}
	return nil
}

// rawJSON is v as its JSON decodes into maps, numbers kept as written.
func rawJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	err = dec.Decode(&out)
	return out, err
}
