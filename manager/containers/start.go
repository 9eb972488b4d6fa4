package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/network"
	"github.com/berth-project/berth/manager/ocispec"
	"github.com/berth-project/berth/manager/shimclient"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
	"github.com/berth-project/berth/snapshotter/mount"
)

// running is a container's process while it runs: its shim and streams.
type running struct {
	shim     *shimclient.Shim
	io       *streams
	log      *jsonLog
	pid      uint32
	detached atomic.Bool // berthd let go of it (shutting down): its end is not an exit
}

// detach lets go of the process without ending it.
func (r *running) detach() {
	r.detached.Store(true)
	r.io.close()
	r.log.close()
	r.shim.Close()
}

// undo is a stack of what to take back when a start fails.
type undo []func()

func (u *undo) push(f func()) { *u = append(*u, f) }
func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// Start starts a container that is not running: it mounts its root
// filesystem, networks it, writes its bundle and runs it in a shim.
func (s *Service) Start(ctx context.Context, ref string) error {
	id, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	c := s.track(id)
	r, err := s.record(id)
	if err != nil {
		return err
	}
	err = s.start(ctx, c, false)
	if err != nil && r.GetConfig().GetAutoRemove() {
		// As docker: a --rm container that cannot start goes.
		if rerr := s.Remove(context.WithoutCancel(ctx), id, true, true); rerr != nil {
			log.L(ctx).Warn("auto-remove after a failed start", "id", id, "error", rerr)
		}
	}
	return err
}

// start starts c; by a restart policy (policy set), only if the user has
// not stopped it meanwhile and berthd is not shutting down.
func (s *Service) start(ctx context.Context, c *container, policy bool) error {
	id := c.id
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run != nil {
		return nil
	}
	c.fs.Lock() // a cp or commit in progress ends first (see container.fs)
	defer c.fs.Unlock()
	// Read again under the lock: a call that held it may have changed it.
	r, err := s.record(id)
	if err != nil {
		return err
	}
	if policy && (r.GetManuallyStopped() || s.stopping.Err() != nil) {
		return nil
	}
	switch r.GetState().GetStatus() {
	case StatusRemoving, StatusDead:
		return fmt.Errorf("container %s is %s: %w", r.GetName(), r.GetState().GetStatus(), errdefs.ErrFailedPrecondition)
	}
	run, att, err := s.launch(ctx, r)
	if err != nil {
		code := int32(128)
		msg := err.Error()
		switch {
		case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
			code = 127
		case strings.Contains(msg, "permission denied"):
			code = 126
		}
		if _, uerr := s.update(id, func(r *containersv1.Container) {
			r.State.Error = msg
			r.State.ExitCode = code
		}); uerr != nil {
			log.L(ctx).Warn("record a failed start", "id", id, "error", uerr)
		}
		return err
	}
	rec, err := s.update(id, func(r *containersv1.Container) {
		r.State = &containersv1.State{Status: StatusRunning, Pid: int32(run.pid), StartedAt: timestamppb.Now(), FinishedAt: r.State.GetFinishedAt()}
		r.ManuallyStopped = false
		r.Network = networkSettings(r.GetConfig().GetNetworkMode(), att)
		r.HostsPath = filepath.Join(s.dir(id), "hosts")
		r.ResolvConfPath = filepath.Join(s.dir(id), "resolv.conf")
		r.HostnamePath = filepath.Join(s.dir(id), "hostname")
	})
	if err != nil {
		// The record cannot say it runs: end it rather than leave it
		// running unknown (with the ports it was given).
		r.Network = networkSettings(r.GetConfig().GetNetworkMode(), att)
		s.abort(ctx, c, run, r)
		return err
	}
	c.state.Lock()
	c.run = run
	close(c.started)
	c.exited = make(chan struct{})
	c.state.Unlock()
	go s.monitor(c, run)
	s.publish(ctx, events.ActionStart, rec, nil)
	s.syncHosts(ctx, rec.GetConfig().GetNetworkMode())
	return nil
}

// launch does the work of Start, undoing it all if a step fails.
func (s *Service) launch(ctx context.Context, r *containersv1.Container) (_ *running, _ *network.Attachment, retErr error) {
	id, cfg := r.GetId(), r.GetConfig()
	var u undo
	defer func() {
		if retErr != nil {
			u.run()
		}
	}()
	img, err := s.cfg.Images.Get(ctx, r.GetImageId())
	if err != nil {
		return nil, nil, fmt.Errorf("the container's image %s: %w", r.GetImage(), err)
	}
	bundle := s.bundle(id)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return nil, nil, err
	}
	u.push(func() { os.RemoveAll(bundle) })
	ms, err := s.cfg.Snapshotter.Mounts(ctx, snapshotKey(id))
	if err != nil {
		return nil, nil, fmt.Errorf("the container's root filesystem: %w", err)
	}
	if err := mount.All(ctx, ms, rootfs); err != nil {
		return nil, nil, fmt.Errorf("mount the root filesystem: %w", err)
	}
	u.push(func() { _ = mount.UnmountAll(rootfs) })

	var att *network.Attachment
	netns := ""
	switch mode := cfg.GetNetworkMode(); mode {
	case "host", "none":
	default:
		nw, err := s.network(ctx, mode)
		if err != nil {
			return nil, nil, err
		}
		ports := portMappings(cfg.GetPorts())
		if att, err = nw.Setup(ctx, id, ports); err != nil {
			return nil, nil, fmt.Errorf("network %s: %w", mode, err)
		}
		u.push(func() {
			if err := nw.Teardown(context.WithoutCancel(ctx), id, att.Ports); err != nil {
				log.L(ctx).Warn("network teardown after a failed start", "id", id, "error", err)
			}
		})
		if err := s.cfg.Networks.Attached(ctx, mode, id); err != nil {
			return nil, nil, err
		}
		if es, ok := s.cfg.Networks.(endpointSetter); ok {
			ep := &networksv1.Endpoint{Name: r.GetName(), MacAddress: att.MAC}
			if att.IP != nil {
				ep.Ipv4Address = fmt.Sprintf("%s/%d", att.IP, att.PrefixLen)
			}
			if err := es.SetEndpoint(ctx, mode, id, ep); err != nil {
				log.L(ctx).Warn("record the network endpoint", "id", id, "network", mode, "error", err)
			}
		}
		u.push(func() { _ = s.cfg.Networks.Detached(context.WithoutCancel(ctx), mode, id) })
		netns = att.NetNSPath
	}
	hostname := cfg.GetHostname()
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	hosts, resolv, hostnameFile, err := network.WriteEtcFiles(s.dir(id), hostname, att, cfg.GetDns())
	if err != nil {
		return nil, nil, err
	}
	mounts := []ocispec.Mount{
		{Type: "bind", Source: hosts, Destination: "/etc/hosts"},
		{Type: "bind", Source: resolv, Destination: "/etc/resolv.conf"},
		{Type: "bind", Source: hostnameFile, Destination: "/etc/hostname"},
	}
	for _, m := range cfg.GetMounts() {
		om := ocispec.Mount{Type: m.GetType(), Source: m.GetSource(), Destination: m.GetDestination(), ReadOnly: m.GetReadOnly(), Options: m.GetOptions()}
		if m.GetType() == "volume" {
			_, dir, _, err := s.cfg.Volumes.Use(ctx, m.GetSource(), id)
			if err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", m.GetSource(), err)
			}
			om.Source = dir
			om.Options = slices.DeleteFunc(slices.Clone(om.Options), func(o string) bool { return o == "nocopy" || o == "volume-nocopy" })
		}
		mounts = append(mounts, om)
	}
	sec, err := parseSecurityOpts(cfg.GetSecurityOpt())
	if err != nil {
		return nil, nil, err
	}
	spec, err := ocispec.Generate(ocispec.Options{
		ID:             id,
		Hostname:       cfg.GetHostname(),
		Rootfs:         rootfs,
		Image:          img.Config.Config,
		Entrypoint:     cfg.GetEntrypoint(),
		EntrypointSet:  cfg.GetEntrypointSet(),
		Cmd:            cfg.GetCmd(),
		Env:            cfg.GetEnv(),
		WorkingDir:     cfg.GetWorkingDir(),
		User:           cfg.GetUser(),
		TTY:            cfg.GetTty(),
		Mounts:         mounts,
		ReadOnlyRootfs: cfg.GetReadOnly(),
		Privileged:     cfg.GetPrivileged(),
		CapAdd:         cfg.GetCapAdd(),
		CapDrop:        cfg.GetCapDrop(),
		Memory:         cfg.GetMemory(),
		MemorySwap:     cfg.GetMemorySwap(),
		NanoCPUs:       cfg.GetNanoCpus(),
		CPUShares:      cfg.GetCpuShares(),
		PidsLimit:      cfg.GetPidsLimit(),
		NetNSPath:      netns,
		HostNetwork:    cfg.GetNetworkMode() == "host",
		Sysctls:        cfg.GetSysctls(),
		ShmSize:        cfg.GetShmSize(),
		CgroupParent:   s.cfg.CgroupParent,

		SeccompUnconfined: sec.seccompUnconfined,
		NoNewPrivileges:   sec.noNewPrivileges,
	})
	if err != nil {
		return nil, nil, err
	}
	if len(spec.Process.Args) == 0 {
		return nil, nil, fmt.Errorf("no command specified: give one after the image name, or use an image with a CMD or ENTRYPOINT: %w", errdefs.ErrInvalidArgument)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return nil, nil, fmt.Errorf("write the bundle: %w", err)
	}

	logCfg, err := parseLogConfig(cfg.GetLogDriver(), cfg.GetLogOpts())
	if err != nil {
		return nil, nil, err
	}
	lg, err := openLog(r.GetLogPath(), logCfg)
	if err != nil {
		return nil, nil, err
	}
	c := s.track(id)
	st, err := openStreams(ctx, bundle, "init", cfg.GetOpenStdin(), cfg.GetTty(), lg, c.attached.broadcast)
	if err != nil {
		lg.close()
		return nil, nil, err
	}
	u.push(func() { st.remove(); lg.close() })

	sh, err := shimclient.Start(ctx, s.cfg.Shim, id, bundle)
	if err != nil {
		return nil, nil, err
	}
	u.push(func() {
		if err := sh.Shutdown(context.WithoutCancel(ctx), id); err != nil {
			log.L(ctx).Warn("shut down the shim of a failed start", "id", id, "error", err)
		}
	})
	// The runtime to run and its state root go with Create, as containerd
	// sends them.
	rtOpts, err := s.cfg.Shim.RuntimeOptions()
	if err != nil {
		return nil, nil, err
	}
	if _, err := sh.Task.Create(ctx, &taskapi.CreateTaskRequest{
		ID: id, Bundle: bundle, Terminal: cfg.GetTty(), Options: rtOpts,
		Stdin: st.paths.stdin, Stdout: st.paths.stdout, Stderr: st.paths.stderr,
	}); err != nil {
		return nil, nil, fmt.Errorf("create: %w", wireError(err))
	}
	u.push(func() {
		_, _ = sh.Task.Delete(context.WithoutCancel(ctx), &taskapi.DeleteRequest{ID: id})
	})
	resp, err := sh.Task.Start(ctx, &taskapi.StartRequest{ID: id})
	if err != nil {
		return nil, nil, fmt.Errorf("start: %w", wireError(err))
	}
	return &running{shim: sh, io: st, log: lg, pid: resp.GetPid()}, att, nil
}

// abort ends a run that berthd cannot keep.
func (s *Service) abort(ctx context.Context, c *container, run *running, r *containersv1.Container) {
	ctx = context.WithoutCancel(ctx)
	_, _ = run.shim.Task.Kill(ctx, &taskapi.KillRequest{ID: c.id, Signal: 9, All: true})
	_, _ = run.shim.Task.Wait(ctx, &taskapi.WaitRequest{ID: c.id})
	s.teardown(ctx, c.id, run, r)
}

// monitor waits for the run to end and records its end.
func (s *Service) monitor(c *container, run *running) {
	ctx := context.Background()
	resp, err := run.shim.Task.Wait(ctx, &taskapi.WaitRequest{ID: c.id})
	if run.detached.Load() {
		return
	}
	code := int32(resp.GetExitStatus())
	at := time.Now()
	if resp.GetExitedAt() != nil {
		at = resp.GetExitedAt().AsTime()
	}
	if err != nil {
		// The shim went (killed): clean up after it as containerd does,
		// which also ends the container's processes.
		log.L(ctx).Warn("lost the container's shim; cleaning up", "id", c.id, "error", err)
		code = 255
		if dr, cerr := shimclient.Cleanup(ctx, s.cfg.Shim, c.id, s.bundle(c.id)); cerr != nil {
			log.L(ctx).Warn("clean up after the shim", "id", c.id, "error", cerr)
		} else if dr.GetExitStatus() != 0 {
			code = int32(dr.GetExitStatus())
		}
	}
	s.finish(ctx, c, run, code, at)
}

// finish records the end of a run and lets go of everything it held but
// the container's snapshot and log. An auto-remove container goes.
func (s *Service) finish(ctx context.Context, c *container, run *running, code int32, at time.Time) {
	c.mu.Lock()
	if c.run != run {
		c.mu.Unlock()
		return
	}
	r, err := s.record(c.id)
	if err != nil {
		c.mu.Unlock()
		log.L(ctx).Error("record of an exited container", "id", c.id, "error", err)
		return
	}
	s.teardown(ctx, c.id, run, r)
	rec, err := s.update(c.id, func(r *containersv1.Container) {
		r.State.Status = StatusExited
		r.State.Pid = 0
		r.State.ExitCode = code
		r.State.FinishedAt = timestamppb.New(at)
		r.Network = &containersv1.NetworkSettings{Network: r.GetConfig().GetNetworkMode()}
	})
	if err != nil {
		log.L(ctx).Error("record an exit", "id", c.id, "error", err)
		rec = r
	}
	c.state.Lock()
	c.run = nil
	c.exitCode = code
	close(c.exited)
	c.started = make(chan struct{})
	c.state.Unlock()
	c.mu.Unlock()
	s.publish(ctx, events.ActionDie, rec, map[string]string{"exitCode": fmt.Sprint(code)})
	s.syncHosts(ctx, rec.GetConfig().GetNetworkMode())
	if !rec.GetConfig().GetAutoRemove() {
		ran := at.Sub(r.GetState().GetStartedAt().AsTime())
		s.maybeRestart(context.WithoutCancel(ctx), c, rec, code, ran)
	}
	if rec.GetConfig().GetAutoRemove() {
		// --rm takes the anonymous volumes too, as docker's does.
		if err := s.Remove(ctx, c.id, false, true); err != nil && !errdefs.IsNotFound(err) {
			log.L(ctx).Warn("auto-remove", "id", c.id, "error", err)
		}
	}
}

// teardown lets go of a run: the task and its shim, the streams (once
// drained), the network and the root filesystem mount.
func (s *Service) teardown(ctx context.Context, id string, run *running, r *containersv1.Container) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := run.shim.Task.Delete(dctx, &taskapi.DeleteRequest{ID: id}); err != nil && !errdefs.IsNotFound(wireError(err)) {
		log.L(ctx).Warn("delete the task", "id", id, "error", err)
	}
	// The shim closes its ends of the streams at Delete: what the process
	// wrote is read to the end before the FIFOs go.
	run.io.wait(5 * time.Second)
	run.io.remove()
	run.log.close()
	if err := run.shim.Shutdown(dctx, id); err != nil {
		log.L(ctx).Warn("shut the shim down", "id", id, "error", err)
	}
	s.releaseRun(ctx, id, r)
}

// releaseRun undoes what a start set up outside the shim: the network and
// the root filesystem mount, and the bundle.
func (s *Service) releaseRun(ctx context.Context, id string, r *containersv1.Container) {
	if mode := r.GetConfig().GetNetworkMode(); mode != "host" && mode != "none" {
		nw, err := s.network(ctx, mode)
		if err == nil {
			err = nw.Teardown(ctx, id, portMappingsOf(r))
		}
		if err != nil {
			log.L(ctx).Warn("network teardown", "id", id, "network", mode, "error", err)
		}
		if s.cfg.Networks != nil {
			if err := s.cfg.Networks.Detached(ctx, mode, id); err != nil {
				log.L(ctx).Warn("network detach", "id", id, "network", mode, "error", err)
			}
		}
	}
	rootfs := filepath.Join(s.bundle(id), "rootfs")
	if err := mount.UnmountAll(rootfs); err != nil {
		log.L(ctx).Warn("unmount the root filesystem", "id", id, "error", err)
	}
	if err := os.RemoveAll(s.bundle(id)); err != nil {
		log.L(ctx).Warn("remove the bundle", "id", id, "error", err)
	}
}

// recover reconnects, after berthd restarted, to a container recorded as
// running: its shim still runs it, or it ended while berthd was away.
func (s *Service) recover(ctx context.Context, c *container, r *containersv1.Container) {
	id := c.id
	c.exited = make(chan struct{})
	sh, err := shimclient.Connect(ctx, s.cfg.Shim, s.bundle(id))
	if err == nil {
		logCfg, _ := parseLogConfig(r.GetConfig().GetLogDriver(), r.GetConfig().GetLogOpts())
		lg, lerr := openLog(r.GetLogPath(), logCfg)
		if lerr == nil {
			cfg := r.GetConfig()
			st, serr := openStreams(ctx, s.bundle(id), "init", cfg.GetOpenStdin(), cfg.GetTty(), lg, c.attached.broadcast)
			if serr == nil {
				run := &running{shim: sh, io: st, log: lg, pid: uint32(r.GetState().GetPid())}
				c.run = run
				close(c.started)
				go s.monitor(c, run)
				log.L(ctx).Info("reconnected to a running container", "id", id, "name", r.GetName())
				return
			}
			lg.close()
			err = serr
		} else {
			err = lerr
		}
		sh.Close()
	}
	// The shim is gone: clean up after it as containerd does.
	log.L(ctx).Warn("the shim of a running container is gone; cleaning up", "id", id, "error", err)
	code := int32(255)
	if resp, cerr := shimclient.Cleanup(ctx, s.cfg.Shim, id, s.bundle(id)); cerr == nil && resp.GetExitStatus() != 0 {
		code = int32(resp.GetExitStatus())
	}
	s.releaseRun(ctx, id, r)
	if _, err := s.update(id, func(r *containersv1.Container) {
		r.State.Status = StatusExited
		r.State.Pid = 0
		r.State.ExitCode = code
		r.State.FinishedAt = timestamppb.Now()
		r.Network = &containersv1.NetworkSettings{Network: r.GetConfig().GetNetworkMode()}
	}); err != nil {
		log.L(ctx).Error("record the end of a container whose shim went", "id", id, "error", err)
	}
	c.exitCode = code
	close(c.exited)
}

// network finds the network a container joins.
func (s *Service) network(ctx context.Context, name string) (*network.Manager, error) {
	if s.cfg.Networks == nil {
		return nil, fmt.Errorf("network %s: berthd runs without networks: %w", name, errdefs.ErrFailedPrecondition)
	}
	return s.cfg.Networks.Network(ctx, name)
}

func portMappings(ps []*containersv1.PortBinding) []network.PortMapping {
	var out []network.PortMapping
	for _, p := range ps {
		out = append(out, network.PortMapping{HostIP: p.GetHostIp(), HostPort: uint16(p.GetHostPort()), ContainerPort: uint16(p.GetContainerPort()), Protocol: p.GetProtocol()})
	}
	return out
}

// portMappingsOf are the ports a running container published (host ports
// chosen), else those it asked for.
func portMappingsOf(r *containersv1.Container) []network.PortMapping {
	if ps := r.GetNetwork().GetPorts(); len(ps) > 0 {
		return portMappings(ps)
	}
	return portMappings(r.GetConfig().GetPorts())
}

func networkSettings(mode string, a *network.Attachment) *containersv1.NetworkSettings {
	ns := &containersv1.NetworkSettings{Network: mode}
	if a == nil {
		return ns
	}
	ns.SandboxKey = a.NetNSPath
	if a.IP != nil {
		ns.IpAddress = a.IP.String()
		ns.IpPrefixLen = int32(a.PrefixLen)
	}
	if a.Gateway != nil {
		ns.Gateway = a.Gateway.String()
	}
	ns.MacAddress = a.MAC
	for _, p := range a.Ports {
		ns.Ports = append(ns.Ports, &containersv1.PortBinding{HostIp: p.HostIP, HostPort: uint32(p.HostPort), ContainerPort: uint32(p.ContainerPort), Protocol: p.Protocol})
	}
	return ns
}
