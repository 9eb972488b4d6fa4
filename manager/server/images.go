package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/filters"
	"github.com/berth-project/berth/manager/images"
	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	typesv1 "github.com/berth-project/berth/proto/types/v1"
)

// Images serves images.v1 over the image library (manager/images). Its
// errors are the library's, errdefs kinds; Calls converts them.
type Images struct {
	svc    *images.Service
	driver string // the snapshot store's backend, for inspect
}

var _ imagesv1.ImagesService = (*Images)(nil)

// NewImages returns the image service over svc; driver names the
// snapshot store's backend ("overlay", "native", "remote").
func NewImages(svc *images.Service, driver string) *Images {
	return &Images{svc: svc, driver: driver}
}

// ImageEvents returns the images.Config.Events function that publishes
// the image library's events on p as docker reports them: the actor is
// the image's name (or ID), with its name in the "name" attribute.
func ImageEvents(p events.Publisher) func(context.Context, images.Event) {
	return func(ctx context.Context, e images.Event) {
		id := e.Ref
		if id != "" {
			id = images.FamiliarString(id)
		} else {
			id = e.ID.String()
		}
		attrs := map[string]string{"name": id}
		p.Publish(ctx, events.Event{Type: events.TypeImage, Action: e.Action, Actor: events.Actor{ID: id, Attributes: attrs}})
	}
}

func credentials(a *imagesv1.RegistryAuth) *images.Credentials {
	if a == nil || (a.GetUsername() == "" && a.GetPassword() == "" && a.GetIdentityToken() == "" && a.GetRegistryToken() == "") {
		return nil
	}
	return &images.Credentials{
		Username:      a.GetUsername(),
		Password:      a.GetPassword(),
		IdentityToken: a.GetIdentityToken(),
		RegistryToken: a.GetRegistryToken(),
	}
}

func platformString(p *typesv1.Platform) string {
	if p == nil || (p.GetOs() == "" && p.GetArchitecture() == "") {
		return ""
	}
	s := p.GetOs() + "/" + p.GetArchitecture()
	if p.GetVariant() != "" {
		s += "/" + p.GetVariant()
	}
	return s
}

func toPlatform(p *ocispec.Platform) *typesv1.Platform {
	if p == nil {
		return nil
	}
	return &typesv1.Platform{Os: p.OS, Architecture: p.Architecture, Variant: p.Variant, OsVersion: p.OSVersion, OsFeatures: p.OSFeatures}
}

func toDescriptor(d ocispec.Descriptor) *typesv1.Descriptor {
	if d.Digest == "" {
		return nil
	}
	return &typesv1.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, Annotations: d.Annotations, Platform: toPlatform(d.Platform)}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// layerState is what a pull's stream has said of a layer so far.
type layerState struct {
	status                imagesv1.LayerStatus
	size                  int64
	downloaded, extracted int64
}

// Pull implements imagesv1.ImagesService: a PullStarted once the
// reference resolves, LayerProgress for each layer's download and unpack,
// and PullDone.
func (s *Images) Pull(ctx context.Context, req *imagesv1.PullRequest, stream imagesv1.Images_PullServer) error {
	ref, err := images.ParseReference(req.GetReference())
	if err != nil {
		return err
	}
	ref = ref.WithDefaultTag()
	var before digest.Digest
	if old, err := s.svc.Get(ctx, ref.String()); err == nil {
		before = old.Target.Digest
	}
	var (
		sendErr error
		started bool
		layers  = map[digest.Digest]*layerState{}
	)
	send := func(p *imagesv1.PullProgress) {
		if sendErr == nil {
			sendErr = stream.Send(p)
		}
	}
	progress := func(p images.Progress) {
		if p.Phase == images.PhaseResolve {
			if p.Status == images.StatusResolved && !started {
				started = true
				send(&imagesv1.PullProgress{Event: &imagesv1.PullProgress_Started{Started: &imagesv1.PullStarted{
					Name:     ref.String(),
					Manifest: &typesv1.Descriptor{Digest: p.Digest.String()},
				}}})
			}
			return
		}
		if p.Kind != "layer" {
			return
		}
		l := layers[p.Digest]
		if l == nil {
			l = &layerState{}
			layers[p.Digest] = l
		}
		if p.Total > 0 {
			l.size = p.Total
		}
		switch p.Phase {
		case images.PhaseDownload:
			switch p.Status {
			case images.StatusWaiting:
				l.status = imagesv1.LayerStatus_LAYER_STATUS_WAITING
			case images.StatusExists:
				// The blob is here: the unpack phase says whether the
				// layer is too (Already exists) or still has to be
				// extracted.
				l.downloaded = p.Current
				return
			case images.StatusDownloaded:
				l.downloaded = p.Current
				if l.status < imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADED {
					l.status = imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADED
				}
			case images.StatusFailed:
				return
			default: // Downloading, Resuming, Retrying
				l.downloaded = p.Current
				if l.status < imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADING {
					l.status = imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADING
				}
			}
		case images.PhaseUnpack:
			switch p.Status {
			case images.StatusExists:
				l.status, l.downloaded, l.extracted = imagesv1.LayerStatus_LAYER_STATUS_ALREADY_EXISTS, l.size, l.size
			case images.StatusPullComplete:
				l.status, l.extracted = imagesv1.LayerStatus_LAYER_STATUS_COMPLETE, p.Current
				l.downloaded = max(l.downloaded, l.size)
			case images.StatusFailed, images.StatusUnpackSkipped:
				return
			default:
				l.extracted = p.Current
				if l.status < imagesv1.LayerStatus_LAYER_STATUS_EXTRACTING {
					l.status = imagesv1.LayerStatus_LAYER_STATUS_EXTRACTING
				}
			}
		default:
			return
		}
		send(&imagesv1.PullProgress{Event: &imagesv1.PullProgress_Layer{Layer: &imagesv1.LayerProgress{
			Digest: p.Digest.String(), Status: l.status, Size: l.size, Downloaded: l.downloaded, Extracted: l.extracted,
		}}})
	}
	img, err := s.svc.Pull(ctx, ref.String(), images.PullOptions{
		Platform:    platformString(req.GetPlatform()),
		Progress:    progress,
		Credentials: credentials(req.GetAuth()),
	})
	if err != nil {
		return err
	}
	if sendErr != nil {
		return fmt.Errorf("send progress: %w", sendErr)
	}
	return stream.Send(&imagesv1.PullProgress{Event: &imagesv1.PullProgress_Done{Done: &imagesv1.PullDone{
		Name:    ref.String(),
		Digest:  img.Target.Digest.String(),
		Id:      img.ID.String(),
		Updated: before != img.Target.Digest,
	}}})
}

// Push implements imagesv1.ImagesService.
func (s *Images) Push(ctx context.Context, req *imagesv1.PushRequest, stream imagesv1.Images_PushServer) error {
	ref, err := images.ParseReference(req.GetReference())
	if err != nil {
		return err
	}
	ref = ref.WithDefaultTag()
	var sendErr error
	progress := func(p images.Progress) {
		if p.Phase != images.PhaseUpload || sendErr != nil {
			return
		}
		var st imagesv1.PushLayerStatus
		switch p.Status {
		case images.StatusWaiting:
			st = imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_WAITING
		case images.StatusPushing:
			st = imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_PUSHING
		case images.StatusPushed:
			st = imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_PUSHED
		case images.StatusLayerExists, images.StatusExists:
			st = imagesv1.PushLayerStatus_PUSH_LAYER_STATUS_ALREADY_EXISTS
		default:
			return
		}
		sendErr = stream.Send(&imagesv1.PushProgress{Event: &imagesv1.PushProgress_Layer{Layer: &imagesv1.PushLayerProgress{
			Digest: p.Digest.String(), Status: st, Size: p.Total, Pushed: p.Current,
		}}})
	}
	d, err := s.svc.Push(ctx, ref.String(), images.PushOptions{Progress: progress, Credentials: credentials(req.GetAuth())})
	if err != nil {
		return err
	}
	if sendErr != nil {
		return fmt.Errorf("send progress: %w", sendErr)
	}
	var size int64
	if img, err := s.svc.Get(ctx, ref.String()); err == nil && img.Target.Digest == d {
		size = img.Target.Size
	} else if err == nil && img.Manifest.Digest == d {
		size = img.Manifest.Size
	}
	return stream.Send(&imagesv1.PushProgress{Event: &imagesv1.PushProgress_Done{Done: &imagesv1.PushDone{
		Name: ref.Name(), Tag: ref.Tag, Digest: d.String(), Size: size,
	}}})
}

// noSuchImage words the library's failure to find the image name as
// docker does: "No such image: NAME".
func noSuchImage(name string, err error) error {
	if errdefs.IsNotFound(err) && strings.Contains(err.Error(), "no such image: ") {
		return fmt.Errorf("No such image: %s: %w", name, errdefs.ErrNotFound) //nolint:staticcheck // docker's words
	}
	return err
}

func summary(im images.Image) *imagesv1.ImageSummary {
	return &imagesv1.ImageSummary{
		Id:          im.ID.String(),
		RepoTags:    im.RepoTags,
		RepoDigests: im.RepoDigests,
		Created:     timestamp(im.Created),
		Size:        im.Size,
		Labels:      im.Config.Config.Labels,
		Target:      toDescriptor(im.Target),
	}
}

// listFilters are the filters `docker images` takes that berth serves.
var listFilters = []string{"dangling", "label", "reference", "before", "since"}

// List implements imagesv1.ImagesService: every image, newest first,
// with docker's filters dangling, label, reference, before and since.
func (s *Images) List(ctx context.Context, req *imagesv1.ListRequest) (*imagesv1.ListResponse, error) {
	args, err := filters.Parse(req.GetFilters(), listFilters...)
	if err != nil {
		return nil, err
	}
	for _, v := range args.Get("dangling") {
		if v != "true" && v != "false" && v != "1" && v != "0" {
			return nil, fmt.Errorf("invalid filter 'dangling=%s': %w", v, errdefs.ErrInvalidArgument)
		}
	}
	var before, since []time.Time
	for key, out := range map[string]*[]time.Time{"before": &before, "since": &since} {
		for _, v := range args.Get(key) {
			im, err := s.svc.Get(ctx, v)
			if err != nil {
				return nil, err
			}
			*out = append(*out, im.Created)
		}
	}
	list, err := s.svc.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &imagesv1.ListResponse{}
	for _, im := range list {
		if !args.MatchFunc("dangling", func(v string) bool { return (v == "true" || v == "1") == im.Dangling }) {
			continue
		}
		if !args.MatchLabels("label", im.Config.Config.Labels) {
			continue
		}
		if !args.MatchFunc("reference", func(v string) bool { return matchReference(im, v) }) {
			continue
		}
		if slices.ContainsFunc(before, func(t time.Time) bool { return !im.Created.Before(t) }) ||
			slices.ContainsFunc(since, func(t time.Time) bool { return !im.Created.After(t) }) {
			continue
		}
		resp.Images = append(resp.Images, summary(im))
	}
	return resp, nil
}

// matchReference is docker's reference filter: a pattern (path.Match)
// against the familiar names, with or without their tags.
func matchReference(im images.Image, pattern string) bool {
	for _, rt := range im.RepoTags {
		repo := rt
		if i := strings.LastIndex(rt, ":"); i > 0 && !strings.Contains(rt[i:], "/") {
			repo = rt[:i]
		}
		if globMatch(pattern, rt) || globMatch(pattern, repo) {
			return true
		}
	}
	return false
}

// Get implements imagesv1.ImagesService.
func (s *Images) Get(ctx context.Context, req *imagesv1.GetRequest) (*imagesv1.GetResponse, error) {
	im, err := s.svc.Get(ctx, req.GetName())
	if err != nil {
		return nil, noSuchImage(req.GetName(), err)
	}
	c := im.Config
	cfg := &imagesv1.ImageConfig{
		User:        c.Config.User,
		Env:         c.Config.Env,
		Entrypoint:  c.Config.Entrypoint,
		Cmd:         c.Config.Cmd,
		WorkingDir:  c.Config.WorkingDir,
		Labels:      c.Config.Labels,
		StopSignal:  c.Config.StopSignal,
		ArgsEscaped: c.Config.ArgsEscaped, //nolint:staticcheck // docker reports it
	}
	for p := range c.Config.ExposedPorts {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p)
	}
	slices.Sort(cfg.ExposedPorts)
	for v := range c.Config.Volumes {
		cfg.Volumes = append(cfg.Volumes, v)
	}
	slices.Sort(cfg.Volumes)
	var diffIDs []string
	for _, d := range c.RootFS.DiffIDs {
		diffIDs = append(diffIDs, d.String())
	}
	var comment string
	if n := len(c.History); n > 0 {
		comment = c.History[n-1].Comment
	}
	out := &imagesv1.Image{
		Id:          im.ID.String(),
		RepoTags:    im.RepoTags,
		RepoDigests: im.RepoDigests,
		Created:     timestamp(im.Created),
		Author:      c.Author,
		Comment:     comment,
		Config:      cfg,
		Platform:    &typesv1.Platform{Os: c.OS, Architecture: c.Architecture, Variant: c.Variant, OsVersion: c.OSVersion, OsFeatures: c.OSFeatures},
		Size:        im.Size,
		RootFs:      &imagesv1.RootFS{Type: c.RootFS.Type, DiffIds: diffIDs},
		Target:      toDescriptor(im.Target),
		Manifest:    toDescriptor(im.Manifest),
		Storage:     &imagesv1.ImageStorage{Driver: s.driver, Data: map[string]string{"ChainID": im.ChainID}},
	}
	if !im.RecordCreated.IsZero() {
		out.LastTagTime = timestamp(im.RecordCreated)
	}
	return &imagesv1.GetResponse{Image: out}, nil
}

// History implements imagesv1.ImagesService.
func (s *Images) History(ctx context.Context, req *imagesv1.HistoryRequest) (*imagesv1.HistoryResponse, error) {
	entries, err := s.svc.History(ctx, req.GetName())
	if err != nil {
		return nil, noSuchImage(req.GetName(), err)
	}
	resp := &imagesv1.HistoryResponse{}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, &imagesv1.HistoryEntry{
			Id: e.ID, Created: timestamp(e.Created), CreatedBy: e.CreatedBy, Tags: e.Tags,
			Size: e.Size, Comment: e.Comment, EmptyLayer: e.EmptyLayer,
		})
	}
	return resp, nil
}

// Tag implements imagesv1.ImagesService.
func (s *Images) Tag(ctx context.Context, req *imagesv1.TagRequest) (*emptypb.Empty, error) {
	if err := s.svc.Tag(ctx, req.GetSource(), req.GetTarget()); err != nil {
		return nil, noSuchImage(req.GetSource(), err)
	}
	return &emptypb.Empty{}, nil
}

func removed(rs []images.RemoveResult) []*imagesv1.RemovedItem {
	var out []*imagesv1.RemovedItem
	for _, r := range rs {
		it := &imagesv1.RemovedItem{Untagged: r.Untagged}
		if r.Deleted != "" {
			it.Deleted = r.Deleted.String()
		}
		out = append(out, it)
	}
	return out
}

// Remove implements imagesv1.ImagesService.
func (s *Images) Remove(ctx context.Context, req *imagesv1.RemoveRequest) (*imagesv1.RemoveResponse, error) {
	rs, err := s.svc.Remove(ctx, req.GetName(), images.RemoveOptions{Force: req.GetForce()})
	if err != nil {
		return nil, noSuchImage(req.GetName(), err)
	}
	return &imagesv1.RemoveResponse{Items: removed(rs)}, nil
}

// Prune implements imagesv1.ImagesService, with docker's filters until,
// label and label!.
func (s *Images) Prune(ctx context.Context, req *imagesv1.PruneRequest) (*imagesv1.PruneResponse, error) {
	args, err := filters.Parse(req.GetFilters(), "until", "label", "label!")
	if err != nil {
		return nil, err
	}
	var until []time.Time
	for _, v := range args.Get("until") {
		t, err := filters.ParseTime(v, time.Now())
		if err != nil {
			return nil, err
		}
		until = append(until, t)
	}
	opts := images.PruneOptions{All: req.GetAll()}
	if len(args) > 0 {
		opts.Filter = func(im images.Image) bool {
			created := im.RecordCreated
			if created.IsZero() {
				created = im.Created
			}
			if slices.ContainsFunc(until, func(t time.Time) bool { return !created.Before(t) }) {
				return false
			}
			labels := im.Config.Config.Labels
			if !args.MatchLabels("label", labels) {
				return false
			}
			if args.Has("label!") {
				for _, v := range args.Get("label!") {
					k, val, hasVal := strings.Cut(v, "=")
					if have, ok := labels[k]; ok && (!hasVal || have == val) {
						return false
					}
				}
			}
			return true
		}
	}
	r, err := s.svc.Prune(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &imagesv1.PruneResponse{Items: removed(r.Removed), SpaceReclaimed: r.Reclaimed}, nil
}

// exportChunk is the size of the pieces Export streams.
const exportChunk = 256 << 10

// Export implements imagesv1.ImagesService: the archive Save writes, in
// chunks.
func (s *Images) Export(ctx context.Context, req *imagesv1.ExportRequest, stream imagesv1.Images_ExportServer) error {
	if len(req.GetNames()) == 0 {
		return fmt.Errorf("no image to save: %w", errdefs.ErrInvalidArgument)
	}
	format := images.FormatDocker
	if req.GetFormat() == imagesv1.ArchiveFormat_ARCHIVE_FORMAT_OCI {
		format = images.FormatOCI
	}
	// Check every name first, so that an unknown one fails the call
	// before anything is sent.
	for _, n := range req.GetNames() {
		if _, err := s.svc.Get(ctx, n); err != nil {
			return noSuchImage(n, err)
		}
	}
	pr, pw := io.Pipe()
	saved := make(chan error, 1)
	go func() {
		err := s.svc.Save(ctx, pw, req.GetNames(), images.SaveOptions{Format: format})
		pw.CloseWithError(err)
		saved <- err
	}()
	buf := make([]byte, exportChunk)
	for {
		n, rerr := io.ReadFull(pr, buf)
		if n > 0 {
			if err := stream.Send(&imagesv1.ExportChunk{Data: slices.Clone(buf[:n])}); err != nil {
				pr.CloseWithError(err)
				<-saved
				return fmt.Errorf("send archive: %w", err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			pr.CloseWithError(rerr)
			<-saved
			return rerr
		}
	}
	return <-saved
}

// importReader reads the data messages of an Import stream.
type importReader struct {
	stream imagesv1.Images_ImportServer
	buf    []byte
}

func (r *importReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		m, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end of the stream
		}
		r.buf = m.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Import implements imagesv1.ImagesService: the first message carries the
// options, the others the bytes of an archive (load) or a root filesystem
// tarball (import).
func (s *Images) Import(ctx context.Context, stream imagesv1.Images_ImportServer) (*imagesv1.ImportResponse, error) {
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("import: no options sent: %w", errdefs.ErrInvalidArgument)
		}
		return nil, err
	}
	opts := first.GetOptions()
	if opts == nil {
		return nil, fmt.Errorf("import: the first message must carry the options: %w", errdefs.ErrInvalidArgument)
	}
	r := &importReader{stream: stream}
	switch opts.GetKind() {
	case imagesv1.ImportKind_IMPORT_KIND_ARCHIVE:
		res, err := s.svc.Load(ctx, r, images.LoadOptions{})
		if err != nil {
			return nil, err
		}
		resp := &imagesv1.ImportResponse{}
		for _, n := range res.Names {
			resp.Images = append(resp.Images, &imagesv1.ImportedImage{Name: n})
		}
		for _, id := range res.IDs {
			resp.Images = append(resp.Images, &imagesv1.ImportedImage{Id: id.String()})
		}
		return resp, nil
	case imagesv1.ImportKind_IMPORT_KIND_ROOTFS:
		im, err := s.svc.Import(ctx, r, images.ImportOptions{
			Ref:      opts.GetReference(),
			Message:  opts.GetMessage(),
			Source:   "-",
			Changes:  opts.GetChanges(),
			Platform: platformString(opts.GetPlatform()),
		})
		if err != nil {
			return nil, err
		}
		name := ""
		if len(im.RepoTags) > 0 {
			name = im.RepoTags[0]
		}
		return &imagesv1.ImportResponse{Images: []*imagesv1.ImportedImage{{Name: name, Id: im.ID.String()}}}, nil
	}
	return nil, fmt.Errorf("import: unknown kind %v: %w", opts.GetKind(), errdefs.ErrInvalidArgument)
}

func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// CheckLogin implements imagesv1.ImagesService.
func (s *Images) CheckLogin(ctx context.Context, req *imagesv1.CheckLoginRequest) (*emptypb.Empty, error) {
	creds := credentials(req.GetAuth())
	if creds == nil {
		return nil, fmt.Errorf("login: no credentials given: %w", errdefs.ErrInvalidArgument)
	}
	return &emptypb.Empty{}, s.svc.CheckLogin(ctx, req.GetServer(), *creds)
}
