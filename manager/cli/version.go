package cli

import (
	"context"
	"errors"
	"runtime"
	"text/tabwriter"
	"text/template"

	"github.com/berth-project/berth/manager/version"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
)

// VersionOptions are the flags of `berth version`.
type VersionOptions struct {
	Format string
}

// VersionData is what `berth version --format` templates see, with
// docker's field names ({{.Client.Version}}, {{.Server.APIVersion}}...).
type VersionData struct {
	Client ClientVersion
	Server *ServerVersion `json:",omitempty"`
}

// ClientVersion is the berth binary's version.
type ClientVersion struct {
	Version    string
	APIVersion string `json:"ApiVersion"`
	GitCommit  string
	GoVersion  string
	Os         string
	Arch       string
}

// ServerVersion is berthd's version and its components'.
type ServerVersion struct {
	Platform      struct{ Name string }
	Components    []ComponentVersion
	Version       string
	APIVersion    string `json:"ApiVersion"`
	GitCommit     string
	GoVersion     string
	Os            string
	Arch          string
	KernelVersion string `json:",omitempty"`
}

// ComponentVersion is one program of the server.
type ComponentVersion struct {
	Name    string
	Version string
	Details map[string]string `json:",omitempty"`
}

const versionTemplate = `Client:
 Version:	{{.Client.Version}}
 API version:	{{.Client.APIVersion}}
 Go version:	{{.Client.GoVersion}}
 Git commit:	{{.Client.GitCommit}}
 OS/Arch:	{{.Client.Os}}/{{.Client.Arch}}
{{- if .Server}}

Server: {{.Server.Platform.Name}}
{{- range $c := .Server.Components}}
 {{$c.Name}}:
  Version:	{{$c.Version}}
{{- if eq $c.Name "berthd"}}
  API version:	{{$.Server.APIVersion}}
  Go version:	{{$.Server.GoVersion}}
  Git commit:	{{$.Server.GitCommit}}
  OS/Arch:	{{$.Server.Os}}/{{$.Server.Arch}}
{{- else}}
{{- range $k, $v := $c.Details}}
  {{$k}}:	{{$v}}
{{- end}}
{{- end}}
{{- end}}
{{- end}}`

var versionTmpl = template.Must(template.New("version").Parse(versionTemplate))

// Version writes the client's version and the server's. Without a daemon
// it writes the client's and returns the connection error (exit 1), as
// docker does.
func (cli *CLI) Version(ctx context.Context, opts VersionOptions) error {
	data := VersionData{Client: ClientVersion{
		Version:    version.Version,
		APIVersion: version.APIVersion,
		GitCommit:  version.GitCommit,
		GoVersion:  version.GoVersion(),
		Os:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}}
	var serverErr error
	if c, err := cli.client(ctx); err != nil {
		serverErr = err
	} else if v, err := c.Version(ctx); err != nil {
		serverErr = err
	} else {
		data.Server = serverVersion(v)
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
	tw := tabwriter.NewWriter(cli.Out, 0, 8, 1, ' ', 0)
	if err := versionTmpl.Execute(tw, data); err != nil {
		return err
	}
	tw.Write([]byte("\n"))
	if err := tw.Flush(); err != nil {
		return err
	}
	return serverErr
}

func serverVersion(v *systemv1.VersionResponse) *ServerVersion {
	s := &ServerVersion{
		Version:       v.GetVersion(),
		APIVersion:    v.GetApiVersion(),
		GitCommit:     v.GetGitCommit(),
		GoVersion:     v.GetGoVersion(),
		Os:            v.GetOs(),
		Arch:          v.GetArch(),
		KernelVersion: v.GetKernelVersion(),
	}
	s.Platform.Name = "berth"
	for _, c := range v.GetComponents() {
		s.Components = append(s.Components, ComponentVersion{Name: c.GetName(), Version: c.GetVersion(), Details: c.GetDetails()})
	}
	return s
}
