package cli

import (
	"context"
	"errors"
	"fmt"
	"text/template"
	"time"

	"github.com/docker/go-units"

	"github.com/berth-project/berth/manager/version"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
)

// InfoOptions are the flags of `berth info`.
type InfoOptions struct {
	Format string
}

// InfoData is what `berth info --format` templates see: the server's
// fields at the top, with docker's names ({{.ServerVersion}}, {{.Driver}},
// {{.DockerRootDir}}, {{.NCPU}}...), so that scripts written for docker
// keep working.
type InfoData struct {
	ClientInfo ClientInfo
	*ServerInfo
	ServerErrors []string `json:",omitempty"`
}

// ClientInfo is the client's part of info.
type ClientInfo struct {
	Version string
	Debug   bool
}

// ServerInfo is berthd's part of info.
type ServerInfo struct {
	ID                string
	Name              string
	ServerVersion     string
	Containers        int64
	ContainersRunning int64
	ContainersPaused  int64
	ContainersStopped int64
	Images            int64
	Driver            string
	DriverStatus      [][2]string
	DockerRootDir     string // --root; docker's name
	StateDir          string // --state
	CgroupDriver      string
	CgroupVersion     string
	KernelVersion     string
	OperatingSystem   string
	OSVersion         string
	OSType            string
	Architecture      string
	NCPU              int64
	MemTotal          int64
	Debug             bool
	SystemTime        string
	HTTPProxy         string `json:"HttpProxy"`
	HTTPSProxy        string `json:"HttpsProxy"`
	NoProxy           string
	RegistryConfig    struct{ InsecureRegistries []string }
	Warnings          []string
}

var infoTmpl = template.Must(template.New("info").Funcs(template.FuncMap{
	"bytes": func(n int64) string { return units.BytesSize(float64(n)) },
}).Parse(`Server:
 Containers: {{.Containers}}
  Running: {{.ContainersRunning}}
  Paused: {{.ContainersPaused}}
  Stopped: {{.ContainersStopped}}
 Images: {{.Images}}
 Server Version: {{.ServerVersion}}
 Storage Driver: {{.Driver}}
{{- range .DriverStatus}}
  {{index . 0}}: {{index . 1}}
{{- end}}
 Cgroup Driver: {{.CgroupDriver}}
 Cgroup Version: {{.CgroupVersion}}
 Kernel Version: {{.KernelVersion}}
 Operating System: {{.OperatingSystem}}
 OSType: {{.OSType}}
 Architecture: {{.Architecture}}
 CPUs: {{.NCPU}}
 Total Memory: {{bytes .MemTotal}}
 Name: {{.Name}}
 ID: {{.ID}}
 Berth Root Dir: {{.DockerRootDir}}
 State Dir: {{.StateDir}}
 Debug Mode: {{.Debug}}
{{- if .HTTPProxy}}
 HTTP Proxy: {{.HTTPProxy}}
{{- end}}
{{- if .HTTPSProxy}}
 HTTPS Proxy: {{.HTTPSProxy}}
{{- end}}
{{- if .NoProxy}}
 No Proxy: {{.NoProxy}}
{{- end}}
{{- with .RegistryConfig.InsecureRegistries}}
 Insecure Registries:
{{- range .}}
  {{.}}
{{- end}}
{{- end}}
`))

// Info writes what the client and the daemon report about themselves, as
// `docker info` does; the daemon's warnings go to stderr. Without a
// daemon it writes the client's part and fails.
func (cli *CLI) Info(ctx context.Context, opts InfoOptions) error {
	data := InfoData{ClientInfo: ClientInfo{Version: version.Version}}
	var serverErr error
	if c, err := cli.client(ctx); err != nil {
		serverErr = err
	} else if in, err := c.Info(ctx); err != nil {
		serverErr = err
	} else {
		data.ServerInfo = serverInfo(in)
	}
	if serverErr != nil {
		data.ServerErrors = []string{serverErr.Error()}
	}
	if opts.Format != "" {
		if err := one(cli.Out, opts.Format, data); err != nil {
			var status *StatusError
			if serverErr != nil && !errors.As(err, &status) {
				// The template failed on the server's part, which is
				// missing: the reason is the daemon, not the template.
				return serverErr
			}
			return err
		}
		return serverErr
	}
	fmt.Fprintf(cli.Out, "Client:\n Version:    %s\n Debug Mode: %t\n\n", data.ClientInfo.Version, data.ClientInfo.Debug)
	if data.ServerInfo == nil {
		// The error goes to stderr with the others, rather than into the
		// output as docker puts it.
		return serverErr
	}
	if err := infoTmpl.Execute(cli.Out, data.ServerInfo); err != nil {
		return err
	}
	for _, w := range data.Warnings {
		fmt.Fprintln(cli.Err, w)
	}
	return nil
}

func serverInfo(in *systemv1.InfoResponse) *ServerInfo {
	s := &ServerInfo{
		ID:                in.GetId(),
		Name:              in.GetName(),
		ServerVersion:     in.GetServerVersion(),
		Images:            in.GetImages(),
		Containers:        in.GetContainers(),
		ContainersRunning: in.GetContainersRunning(),
		ContainersPaused:  in.GetContainersPaused(),
		ContainersStopped: in.GetContainersStopped(),
		Driver:            in.GetDriver(),
		DockerRootDir:     in.GetRootDir(),
		StateDir:          in.GetStateDir(),
		CgroupDriver:      in.GetCgroupDriver(),
		CgroupVersion:     in.GetCgroupVersion(),
		KernelVersion:     in.GetKernelVersion(),
		OperatingSystem:   in.GetOperatingSystem(),
		OSVersion:         in.GetOsVersion(),
		OSType:            in.GetOsType(),
		Architecture:      in.GetArchitecture(),
		NCPU:              in.GetNcpu(),
		MemTotal:          in.GetMemTotal(),
		Debug:             in.GetDebug(),
		HTTPProxy:         in.GetHttpProxy(),
		HTTPSProxy:        in.GetHttpsProxy(),
		NoProxy:           in.GetNoProxy(),
		Warnings:          in.GetWarnings(),
	}
	if t := in.GetSystemTime(); t != nil {
		s.SystemTime = t.AsTime().Local().Format(time.RFC3339Nano)
	}
	for _, kv := range in.GetDriverStatus() {
		s.DriverStatus = append(s.DriverStatus, [2]string{kv.GetKey(), kv.GetValue()})
	}
	s.RegistryConfig.InsecureRegistries = in.GetRegistryConfig().GetInsecureRegistries()
	return s
}
