package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/client"
	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("anything"), 1},
		{&client.ConnectError{Addr: "unix:///x", Err: errors.New("connect: no such file or directory")}, 1},
		{&client.ResponseError{Msg: "no such image", Err: errdefs.ErrNotFound}, 1},
		{fmt.Errorf("wrapped: %w", &UsageError{Command: "berth version", Err: errors.New("unknown flag: --x")}), 125},
		{&StatusError{Code: 64, Msg: "template parsing error"}, 64},
		{fmt.Errorf("%w: %w", ErrInterrupted, context.Canceled), 130},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	u := &UsageError{Command: "berth system df", Err: errors.New("unknown flag: --x")}
	if u.Error() != "unknown flag: --x\nSee 'berth system df --help'." {
		t.Errorf("usage message %q", u.Error())
	}
}

type row struct {
	Name  string
	Size  string
	Attrs map[string]string
}

var rowHeaders = map[string]string{"Name": "NAME", "Size": "SIZE", "Attrs": "ATTRS"}

func TestList(t *testing.T) {
	rows := []any{
		row{Name: "first", Size: "1kB", Attrs: map[string]string{"a": "<b>"}},
		row{Name: "a-much-longer-name", Size: "10MB"},
	}
	for _, tc := range []struct{ format, want string }{
		// The default table: docker's columns, 3 spaces apart, 10 wide at least.
		{"", "NAME                 SIZE\nfirst                1kB\na-much-longer-name   10MB\n"},
		{"table", "NAME                 SIZE\nfirst                1kB\na-much-longer-name   10MB\n"},
		// A table of one's own: headers from the fields it names; `\t` is a tab.
		{`table {{.Size}}\t{{.Name}}`, "SIZE      NAME\n1kB       first\n10MB      a-much-longer-name\n"},
		// A plain template: no header, no alignment.
		{"{{.Name}}:{{.Size}}", "first:1kB\na-much-longer-name:10MB\n"},
		// json: one object per line, HTML not escaped.
		{"json", `{"Name":"first","Size":"1kB","Attrs":{"a":"<b>"}}` + "\n" + `{"Name":"a-much-longer-name","Size":"10MB","Attrs":null}` + "\n"},
		{"{{json .Attrs}}", `{"a":"<b>"}` + "\nnull\n"},
		// docker's functions.
		{`{{upper .Name | printf "%.3s"}} {{lower "AB"}} {{truncate .Name 2}} {{join (split .Size "B") "-"}} {{title .Name}}|{{pad "x" 1 2}}|`,
			"FIR ab fi 1k- First| x  |\nA-M ab a- 10M- A-much-longer-name| x  |\n"},
	} {
		var out bytes.Buffer
		if err := list(&out, tc.format, "{{.Name}}\t{{.Size}}", rowHeaders, rows); err != nil {
			t.Errorf("format %q: %v", tc.format, err)
			continue
		}
		if out.String() != tc.want {
			t.Errorf("format %q:\n got %q\nwant %q", tc.format, out.String(), tc.want)
		}
	}

	var out bytes.Buffer
	if err := list(&out, "{{.Name", "", rowHeaders, rows); err == nil || !strings.Contains(err.Error(), "template parsing error") {
		t.Errorf("a bad template: %v", err)
	}
	if err := list(&out, "{{.Bogus}}", "", rowHeaders, rows); err == nil {
		t.Error("a template naming a missing field succeeded")
	}
}

func TestOne(t *testing.T) {
	var out bytes.Buffer
	v := VersionData{Client: ClientVersion{Version: "1.2", APIVersion: "1.0"}}
	if err := one(&out, "{{.Client.Version}} {{.Client.APIVersion}}", v); err != nil || out.String() != "1.2 1.0\n" {
		t.Errorf("template: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := one(&out, "json", v); err != nil || !strings.HasPrefix(out.String(), `{"Client":{"Version":"1.2","ApiVersion":"1.0"`) || strings.Contains(out.String(), "Server") {
		t.Errorf("json: %q, %v", out.String(), err)
	}
	err := one(&out, "{{", v)
	if ExitCode(err) != 64 {
		t.Errorf("bad template: %v (exit %d), want exit 64 as docker", err, ExitCode(err))
	}
}

func TestVersionWithoutDaemon(t *testing.T) {
	var out, errOut bytes.Buffer
	cli := &CLI{Out: &out, Err: &errOut, Host: "unix://" + filepath.Join(t.TempDir(), "none.sock")}
	err := cli.Version(context.Background(), VersionOptions{})
	var ce *client.ConnectError
	if !errors.As(err, &ce) || !ce.NotRunning() || ExitCode(err) != 1 {
		t.Fatalf("err = %v, want a not-running connect error", err)
	}
	if !strings.Contains(err.Error(), "Is berthd running? Start it with `berthd &` or `systemctl start berthd`") {
		t.Errorf("message %q does not say how to start the daemon", err)
	}
	if !strings.HasPrefix(out.String(), "Client:\n Version:") || strings.Contains(out.String(), "Server") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestEventLine(t *testing.T) {
	ts := time.Date(2025, 3, 1, 10, 0, 0, 5, time.Local)
	e := &eventsv1.Event{Time: timestamppb.New(ts), Type: "snapshotter", Action: "die",
		Actor: &eventsv1.Actor{Id: "/run/berth/snapshotter.sock", Attributes: map[string]string{"signal": "killed", "pid": "12"}}}
	want := ts.Format("2006-01-02T15:04:05.000000000Z07:00") + " snapshotter die /run/berth/snapshotter.sock (pid=12, signal=killed)\n"
	if got := eventLine(e); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	m := eventMessage(e)
	if m.TimeNano != ts.UnixNano() || m.Time != ts.Unix() || m.Scope != "local" || m.Actor.Attributes["pid"] != "12" {
		t.Errorf("message %+v", m)
	}
}

func TestRepoTags(t *testing.T) {
	got := repoTags(&imagesv1.ImageSummary{RepoTags: []string{"busybox:latest", "127.0.0.1:5000/app:v1"}})
	if fmt.Sprint(got) != "[[busybox latest] [127.0.0.1:5000/app v1]]" {
		t.Errorf("repoTags = %v", got)
	}
	if got := repoTags(&imagesv1.ImageSummary{}); fmt.Sprint(got) != "[[<none> <none>]]" {
		t.Errorf("no names: %v", got)
	}
	if got := shortID("sha256:0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("shortID = %s", got)
	}
}

func TestReclaimable(t *testing.T) {
	if got := reclaimable(500, 1000); got != "500B (50%)" {
		t.Errorf("got %s", got)
	}
	if got := reclaimable(0, 0); got != "0B" {
		t.Errorf("got %s", got)
	}
}
