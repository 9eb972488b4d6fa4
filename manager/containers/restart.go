package containers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/manager/log"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// restartPolicy is docker's --restart: no, always, unless-stopped,
// on-failure[:max].
type restartPolicy struct {
	name string
	max  int // on-failure's limit; 0 is none
}

func parseRestartPolicy(s string) (restartPolicy, error) {
	name, arg, hasArg := strings.Cut(s, ":")
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasArg {
			return restartPolicy{}, fmt.Errorf("invalid restart policy %q: maximum retry count can only be used with 'on-failure': %w", s, errdefs.ErrInvalidArgument)
		}
		if name == "" {
			name = "no"
		}
		return restartPolicy{name: name}, nil
	case "on-failure":
		p := restartPolicy{name: name}
		if hasArg {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return restartPolicy{}, fmt.Errorf("invalid restart policy %q: the maximum retry count must be a non-negative number: %w", s, errdefs.ErrInvalidArgument)
			}
			p.max = n
		}
		return p, nil
	}
	return restartPolicy{}, fmt.Errorf("invalid restart policy %q: want no, always, unless-stopped or on-failure[:max-retries]: %w", s, errdefs.ErrInvalidArgument)
}

// after tells whether a container that exited with code, having been
// restarted count times, starts again. A container stopped by the user
// never does.
func (p restartPolicy) after(code int32, count int32, manual bool) bool {
	if manual {
		return false
	}
	switch p.name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (p.max == 0 || int(count) < p.max)
	}
	return false
}

// atStartup tells whether berthd starts a stopped container when it starts,
// as dockerd does.
func (p restartPolicy) atStartup(manual bool) bool {
	return p.name == "always" || (p.name == "unless-stopped" && !manual)
}

// Backoff between restarts, docker's: it doubles from 100 ms up to a
// minute, and starts over after a run of 10 s or more.
const (
	restartFirstDelay = 100 * time.Millisecond
	restartMaxDelay   = time.Minute
	restartResetAfter = 10 * time.Second
)

func nextDelay(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= restartResetAfter {
		return restartFirstDelay
	}
	return min(prev*2, restartMaxDelay)
}

// maybeRestart starts an exited container again when its policy says so,
// after the backoff; a stop, a removal or a shutdown in the meantime wins.
func (s *Service) maybeRestart(ctx context.Context, c *container, r *containersv1.Container, code int32, ran time.Duration) {
	p, err := parseRestartPolicy(r.GetConfig().GetRestartPolicy())
	if err != nil || !p.after(code, r.GetRestartCount(), r.GetManuallyStopped()) {
		return
	}
	c.state.Lock()
	c.restartDelay = nextDelay(c.restartDelay, ran)
	delay := c.restartDelay
	c.state.Unlock()
	go func() {
		select {
		case <-time.After(delay):
		case <-c.removed:
			return
		case <-s.stopping.Done():
			return
		}
		// The user may have stopped or started it meanwhile.
		cur, err := s.record(c.id)
		if err != nil || cur.GetManuallyStopped() || cur.GetState().GetStatus() != StatusExited {
			return
		}
		if _, err := s.update(c.id, func(r *containersv1.Container) { r.RestartCount++ }); err != nil {
			return
		}
		if err := s.start(ctx, c, true); err != nil {
			// As docker's: a failed restart is tried again, later.
			log.L(ctx).Warn("restart", "id", c.id, "name", cur.GetName(), "error", err)
			if again, rerr := s.record(c.id); rerr == nil {
				s.maybeRestart(ctx, c, again, again.GetState().GetExitCode(), 0)
			}
		}
	}()
}

// startAtStartup starts, when berthd starts, the stopped containers whose
// policy says so.
func (s *Service) startAtStartup(ctx context.Context, recs []*containersv1.Container) {
	for _, r := range recs {
		if st := r.GetState().GetStatus(); st != StatusExited && st != StatusCreated {
			continue
		}
		if st := r.GetState().GetStatus(); st == StatusCreated && r.GetState().GetStartedAt() == nil {
			continue // never started: docker leaves those
		}
		p, err := parseRestartPolicy(r.GetConfig().GetRestartPolicy())
		if err != nil || !p.atStartup(r.GetManuallyStopped()) {
			continue
		}
		if s.stopping.Err() != nil {
			return
		}
		// The policy chose it (always starts even what the user stopped).
		if err := s.start(ctx, s.track(r.GetId()), false); err != nil {
			log.L(ctx).Warn("start at start-up (restart policy)", "id", r.GetId(), "name", r.GetName(), "error", err)
		}
	}
}
