package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/go-units"

	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	systemv1 "github.com/berth-project/berth/proto/services/system/v1"
)

// DiskUsageOptions are the flags of `berth system df`.
type DiskUsageOptions struct {
	Verbose bool
	Format  string
}

// DiskUsageRow is a line of `berth system df`; --format templates see its
// fields, docker's, all strings as docker gives them.
type DiskUsageRow struct {
	Type        string
	TotalCount  string
	Active      string
	Size        string
	Reclaimable string
}

const diskUsageTable = "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

var diskUsageHeaders = map[string]string{
	"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
}

// DiskUsage writes what berth's data uses on disk, as `docker system df`
// does: a line per kind of object (images so far), and with Verbose the
// images one by one.
func (cli *CLI) DiskUsage(ctx context.Context, opts DiskUsageOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	du, err := c.DiskUsage(ctx)
	if err != nil {
		return err
	}
	img := du.GetImages()
	if opts.Verbose && (opts.Format == "" || opts.Format == formatTable) {
		return cli.diskUsageVerbose(img)
	}
	ctr := du.GetContainers()
	rows := []any{DiskUsageRow{
		Type:        "Images",
		TotalCount:  fmt.Sprint(img.GetTotal()),
		Active:      fmt.Sprint(img.GetActive()),
		Size:        units.HumanSize(float64(img.GetSize())),
		Reclaimable: reclaimable(img.GetReclaimable(), img.GetSize()),
	}, DiskUsageRow{
		Type:        "Containers",
		TotalCount:  fmt.Sprint(ctr.GetTotal()),
		Active:      fmt.Sprint(ctr.GetActive()),
		Size:        units.HumanSize(float64(ctr.GetSize())),
		Reclaimable: reclaimable(ctr.GetReclaimable(), ctr.GetSize()),
	}}
	return list(cli.Out, opts.Format, diskUsageTable, diskUsageHeaders, rows)
}

// reclaimable is docker's "<size> (<percent>%)".
func reclaimable(n, total int64) string {
	if total <= 0 {
		return units.HumanSize(float64(n))
	}
	return fmt.Sprintf("%s (%d%%)", units.HumanSize(float64(n)), n*100/total)
}

// DiskUsageImageRow is a line of the images of `berth system df -v`.
type DiskUsageImageRow struct {
	Repository   string
	Tag          string
	ID           string
	CreatedSince string
	Size         string
	SharedSize   string
	UniqueSize   string
	Containers   string
}

const diskUsageImagesTable = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"

var diskUsageImagesHeaders = map[string]string{
	"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
	"Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS",
}

func (cli *CLI) diskUsageVerbose(img *systemv1.ImagesDiskUsage) error {
	fmt.Fprint(cli.Out, "Images space usage:\n\n")
	var rows []any
	for _, im := range img.GetImages() {
		for _, rt := range repoTags(im) {
			rows = append(rows, DiskUsageImageRow{
				Repository:   rt[0],
				Tag:          rt[1],
				ID:           shortID(im.GetId()),
				CreatedSince: since(im.GetCreated().AsTime()),
				Size:         units.HumanSizeWithPrecision(float64(im.GetSize()), 3),
				SharedSize:   units.HumanSizeWithPrecision(float64(im.GetSharedSize()), 3),
				UniqueSize:   units.HumanSizeWithPrecision(float64(im.GetSize()-im.GetSharedSize()), 3),
				Containers:   "0",
			})
		}
	}
	return list(cli.Out, "", diskUsageImagesTable, diskUsageImagesHeaders, rows)
}

// repoTags splits an image's names into repository and tag, "<none>" for
// an image without one, as docker lists them.
func repoTags(im *imagesv1.ImageSummary) [][2]string {
	var out [][2]string
	for _, rt := range im.GetRepoTags() {
		i := strings.LastIndex(rt, ":")
		if i < 0 || strings.Contains(rt[i:], "/") {
			out = append(out, [2]string{rt, "<none>"})
			continue
		}
		out = append(out, [2]string{rt[:i], rt[i+1:]})
	}
	if len(out) == 0 {
		out = append(out, [2]string{"<none>", "<none>"})
	}
	return out
}

// shortID is the 12 hex digits docker shows of an ID.
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func since(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

// PruneOptions are the flags of `berth system prune`.
type PruneOptions struct {
	All     bool
	Force   bool
	Filters []string
}

// SystemPrune removes what nothing uses, after asking unless Force, and
// writes what went, as `docker system prune` does.
func (cli *CLI) SystemPrune(ctx context.Context, opts PruneOptions) error {
	if !opts.Force {
		what := "all dangling images"
		if opts.All {
			what = "all images without at least one container associated to them"
		}
		fmt.Fprintf(cli.Out, "WARNING! This will remove:\n  - all stopped containers\n  - %s\n  - the disk space of removed snapshots\n\nAre you sure you want to continue? [y/N] ", what)
		if !confirmed(cli.In) {
			return fmt.Errorf("system prune has been cancelled")
		}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.SystemPrune(ctx, &systemv1.PruneRequest{All: opts.All, Filters: opts.Filters})
	if err != nil {
		return err
	}
	if ids := resp.GetContainersDeleted(); len(ids) > 0 {
		fmt.Fprintln(cli.Out, "Deleted Containers:")
		for _, id := range ids {
			fmt.Fprintln(cli.Out, id)
		}
		fmt.Fprintln(cli.Out)
	}
	if items := resp.GetImagesRemoved(); len(items) > 0 {
		fmt.Fprintln(cli.Out, "Deleted Images:")
		for _, it := range items {
			if it.GetUntagged() != "" {
				fmt.Fprintln(cli.Out, "untagged:", it.GetUntagged())
			}
			if it.GetDeleted() != "" {
				fmt.Fprintln(cli.Out, "deleted:", it.GetDeleted())
			}
		}
		fmt.Fprintln(cli.Out)
	}
	fmt.Fprintln(cli.Out, "Total reclaimed space:", units.HumanSize(float64(resp.GetSpaceReclaimed())))
	return nil
}

// confirmed reads a line and tells whether it is yes.
func confirmed(in io.Reader) bool {
	if in == nil {
		return false
	}
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
