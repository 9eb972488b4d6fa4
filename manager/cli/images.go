package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/go-units"

	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

// ImagesOptions are the flags of `berth images` (`berth image ls`).
type ImagesOptions struct {
	All     bool // docker's intermediate images: berth has none, so all are shown anyway
	Quiet   bool
	Digests bool
	NoTrunc bool
	Format  string
	Filters []string
}

// ImageRow is a line of `berth images`; --format templates see docker's
// fields.
type ImageRow struct {
	ID           string
	Repository   string
	Tag          string
	Digest       string
	CreatedSince string
	CreatedAt    string
	Size         string
	VirtualSize  string
	SharedSize   string
	UniqueSize   string
	Containers   string
}

const (
	imagesTable        = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	imagesDigestsTable = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)

var imagesHeaders = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "VirtualSize": "VIRTUAL SIZE",
	"SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS",
}

// Images lists images as `docker images` does.
func (cli *CLI) Images(ctx context.Context, repo string, opts ImagesOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	filters := opts.Filters
	if repo != "" {
		filters = append(filters, "reference="+repo)
	}
	resp, err := c.Images().List(ctx, &imagesv1.ListRequest{Filters: filters})
	if err != nil {
		return err
	}
	id := func(s string) string {
		if opts.NoTrunc {
			return s
		}
		return shortID(s)
	}
	if opts.Quiet {
		seen := map[string]bool{}
		for _, im := range resp.GetImages() {
			if !seen[im.GetId()] {
				seen[im.GetId()] = true
				fmt.Fprintln(cli.Out, id(im.GetId()))
			}
		}
		return nil
	}
	var rows []any
	for _, im := range resp.GetImages() {
		for _, rt := range repoTags(im) {
			digest := "<none>"
			for _, rd := range im.GetRepoDigests() {
				if r, d, ok := strings.Cut(rd, "@"); ok && (r == rt[0] || rt[0] == "<none>") {
					digest = d
					break
				}
			}
			created := im.GetCreated().AsTime()
			size := units.HumanSizeWithPrecision(float64(im.GetSize()), 3)
			rows = append(rows, ImageRow{
				ID:           id(im.GetId()),
				Repository:   rt[0],
				Tag:          rt[1],
				Digest:       digest,
				CreatedSince: since(created),
				CreatedAt:    created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
				Size:         size,
				VirtualSize:  size,
				SharedSize:   units.HumanSizeWithPrecision(float64(im.GetSharedSize()), 3),
				UniqueSize:   units.HumanSizeWithPrecision(float64(im.GetSize()-im.GetSharedSize()), 3),
				Containers:   "N/A",
			})
		}
	}
	table := imagesTable
	if opts.Digests {
		table = imagesDigestsTable
	}
	return list(cli.Out, opts.Format, table, imagesHeaders, rows)
}

// InspectOptions are the flags of `berth image inspect`.
type InspectOptions struct {
	Format string
}

// imageInspect is docker's image inspect object.
type imageInspect struct {
	ID            string            `json:"Id"`
	RepoTags      []string          `json:"RepoTags"`
	RepoDigests   []string          `json:"RepoDigests"`
	Parent        string            `json:"Parent"`
	Comment       string            `json:"Comment"`
	Created       string            `json:"Created,omitempty"`
	DockerVersion string            `json:"DockerVersion"`
	Author        string            `json:"Author"`
	Config        inspectConfig     `json:"Config"`
	Architecture  string            `json:"Architecture"`
	Variant       string            `json:"Variant,omitempty"`
	Os            string            `json:"Os"`
	Size          int64             `json:"Size"`
	GraphDriver   inspectDriver     `json:"GraphDriver"`
	RootFS        inspectRootFS     `json:"RootFS"`
	Metadata      map[string]string `json:"Metadata"`
	Descriptor    *inspectDesc      `json:"Descriptor,omitempty"`
}

type inspectConfig struct {
	User         string              `json:"User"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env"`
	Entrypoint   []string            `json:"Entrypoint"`
	Cmd          []string            `json:"Cmd"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	OnBuild      []string            `json:"OnBuild"`
	Shell        []string            `json:"Shell,omitempty"`
}

type inspectDriver struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

type inspectRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

type inspectDesc struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

func toInspect(im *imagesv1.Image) imageInspect {
	cfg := im.GetConfig()
	out := imageInspect{
		ID:            im.GetId(),
		RepoTags:      nonNil(im.GetRepoTags()),
		RepoDigests:   nonNil(im.GetRepoDigests()),
		Comment:       im.GetComment(),
		DockerVersion: im.GetDockerVersion(),
		Author:        im.GetAuthor(),
		Config: inspectConfig{
			User: cfg.GetUser(), Env: cfg.GetEnv(), Entrypoint: cfg.GetEntrypoint(), Cmd: cfg.GetCmd(),
			WorkingDir: cfg.GetWorkingDir(), Labels: cfg.GetLabels(), StopSignal: cfg.GetStopSignal(),
			ArgsEscaped: cfg.GetArgsEscaped(), OnBuild: cfg.GetOnBuild(), Shell: cfg.GetShell(),
		},
		Architecture: im.GetPlatform().GetArchitecture(),
		Variant:      im.GetPlatform().GetVariant(),
		Os:           im.GetPlatform().GetOs(),
		Size:         im.GetSize(),
		GraphDriver:  inspectDriver{Name: im.GetStorage().GetDriver(), Data: im.GetStorage().GetData()},
		RootFS:       inspectRootFS{Type: im.GetRootFs().GetType(), Layers: im.GetRootFs().GetDiffIds()},
		Metadata:     map[string]string{},
	}
	if im.GetCreated() != nil {
		out.Created = im.GetCreated().AsTime().Format(time.RFC3339Nano)
	}
	if im.GetLastTagTime() != nil {
		out.Metadata["LastTagTime"] = im.GetLastTagTime().AsTime().Format(time.RFC3339Nano)
	}
	for _, p := range cfg.GetExposedPorts() {
		if out.Config.ExposedPorts == nil {
			out.Config.ExposedPorts = map[string]struct{}{}
		}
		out.Config.ExposedPorts[p] = struct{}{}
	}
	for _, v := range cfg.GetVolumes() {
		if out.Config.Volumes == nil {
			out.Config.Volumes = map[string]struct{}{}
		}
		out.Config.Volumes[v] = struct{}{}
	}
	if t := im.GetTarget(); t != nil {
		out.Descriptor = &inspectDesc{MediaType: t.GetMediaType(), Digest: t.GetDigest(), Size: t.GetSize()}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ImageInspect writes the images as docker's JSON array, or each through
// a --format template. Images not found are reported after the others,
// and make the command fail.
func (cli *CLI) ImageInspect(ctx context.Context, names []string, opts InspectOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.inspectEach(names, opts.Format, func(n string) (any, error) {
		resp, err := c.Images().Get(ctx, &imagesv1.GetRequest{Name: n})
		if err != nil {
			return nil, err
		}
		return toInspect(resp.GetImage()), nil
	})
}

// HistoryOptions are the flags of `berth history`.
type HistoryOptions struct {
	Human   bool
	NoTrunc bool
	Quiet   bool
	Format  string
}

// HistoryRow is a line of `berth history`.
type HistoryRow struct {
	ID           string
	CreatedSince string
	CreatedAt    string
	CreatedBy    string
	Size         string
	Comment      string
}

const historyTable = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

var historyHeaders = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
	"Size": "SIZE", "Comment": "COMMENT",
}

// History shows how an image was built, as `docker history`.
func (cli *CLI) History(ctx context.Context, name string, opts HistoryOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Images().History(ctx, &imagesv1.HistoryRequest{Name: name})
	if err != nil {
		return err
	}
	var rows []any
	for _, e := range resp.GetEntries() {
		id := e.GetId()
		if !opts.NoTrunc && strings.HasPrefix(id, "sha256:") {
			id = shortID(id)
		}
		if opts.Quiet {
			fmt.Fprintln(cli.Out, id)
			continue
		}
		created := e.GetCreated().AsTime()
		createdBy := strings.ReplaceAll(e.GetCreatedBy(), "\t", " ")
		if !opts.NoTrunc && len([]rune(createdBy)) > 45 {
			createdBy = string([]rune(createdBy)[:44]) + "…"
		}
		size := fmt.Sprint(e.GetSize())
		if opts.Human {
			size = units.HumanSizeWithPrecision(float64(e.GetSize()), 3)
		}
		row := HistoryRow{ID: id, CreatedBy: createdBy, Size: size, Comment: e.GetComment(), CreatedSince: "N/A", CreatedAt: "N/A"}
		if e.GetCreated() != nil {
			row.CreatedAt = created.Format(time.RFC3339)
			if opts.Human {
				row.CreatedSince = since(created)
			} else {
				row.CreatedSince = row.CreatedAt
			}
		}
		rows = append(rows, row)
	}
	if opts.Quiet {
		return nil
	}
	return list(cli.Out, opts.Format, historyTable, historyHeaders, rows)
}

// Tag names the image source also target.
func (cli *CLI) Tag(ctx context.Context, source, target string) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	_, err = c.Images().Tag(ctx, &imagesv1.TagRequest{Source: source, Target: target})
	return err
}

// RemoveOptions are the flags of `berth rmi`.
type RemoveOptions struct {
	Force   bool
	NoPrune bool
}

// Remove removes images as `docker rmi` does: each name in turn, what
// went printed, the failures printed on stderr and failing the command.
func (cli *CLI) Remove(ctx context.Context, names []string, opts RemoveOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	var failed []string
	for _, n := range names {
		resp, err := c.Images().Remove(ctx, &imagesv1.RemoveRequest{Name: n, Force: opts.Force, NoPrune: opts.NoPrune})
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		printRemoved(cli.Out, resp.GetItems(), "Untagged: ", "Deleted: ")
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	return nil
}

func printRemoved(w io.Writer, items []*imagesv1.RemovedItem, untagged, deleted string) {
	for _, it := range items {
		if it.GetUntagged() != "" {
			fmt.Fprintln(w, untagged+it.GetUntagged())
		}
		if it.GetDeleted() != "" {
			fmt.Fprintln(w, deleted+it.GetDeleted())
		}
	}
}

// ImagePrune removes unused images as `docker image prune` does.
func (cli *CLI) ImagePrune(ctx context.Context, opts PruneOptions) error {
	if !opts.Force {
		msg := "WARNING! This will remove all dangling images."
		if opts.All {
			msg = "WARNING! This will remove all images without at least one container associated to them."
		}
		fmt.Fprintf(cli.Out, "%s\nAre you sure you want to continue? [y/N] ", msg)
		if !confirmed(cli.In) {
			return nil
		}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Images().Prune(ctx, &imagesv1.PruneRequest{All: opts.All, Filters: opts.Filters})
	if err != nil {
		return err
	}
	if items := resp.GetItems(); len(items) > 0 {
		fmt.Fprintln(cli.Out, "Deleted Images:")
		printRemoved(cli.Out, items, "untagged: ", "deleted: ")
		fmt.Fprintln(cli.Out)
	}
	fmt.Fprintln(cli.Out, "Total reclaimed space:", units.HumanSize(float64(resp.GetSpaceReclaimed())))
	return nil
}

// PushOptions are the flags of `berth push`.
type PushOptions struct {
	Quiet bool
}

// Push pushes an image to its registry as `docker push` does.
func (cli *CLI) Push(ctx context.Context, ref string, opts PushOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Images().Push(ctx, &imagesv1.PushRequest{Reference: ref, Auth: authFor(ref)})
	if err != nil {
		return c.Error(err)
	}
	repo := ref
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		repo = ref[:i]
	}
	if !opts.Quiet {
		fmt.Fprintf(cli.Out, "The push refers to repository [%s]\n", repo)
	}
	last := map[string]imagesv1.PushLayerStatus{}
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon ended the push without saying it was done")
			}
			return c.Error(err)
		}
		switch ev := m.GetEvent().(type) {
		case *imagesv1.PushProgress_Layer:
			l := ev.Layer
			if opts.Quiet || last[l.GetDigest()] == l.GetStatus() {
				continue
			}
			last[l.GetDigest()] = l.GetStatus()
			var word string
			switch l.GetStatus() {
			case imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_PREPARING:
				word = "Preparing"
			case imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_WAITING:
				word = "Waiting"
			case imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_PUSHING:
				word = "Pushing"
			case imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_PUSHED:
				word = "Pushed"
			case imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_ALREADY_EXISTS:
				word = "Layer already exists"
			case imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_MOUNTED:
				word = "Mounted from " + l.GetMountedFrom()
			default:
				continue
			}
			fmt.Fprintf(cli.Out, "%s: %s\n", shortID(l.GetDigest()), word)
		case *imagesv1.PushProgress_Done:
			d := ev.Done
			if opts.Quiet {
				fmt.Fprintln(cli.Out, ref)
				return nil
			}
			fmt.Fprintf(cli.Out, "%s: digest: %s size: %d\n", d.GetTag(), d.GetDigest(), d.GetSize())
			return nil
		}
	}
}
