package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/types"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/stats"
)

func eventsCommand() *command {
	var (
		interval time.Duration
		once     bool
	)
	return &command{
		name:  "events",
		args:  "<container-id>",
		short: "print container events (stats every interval, and OOM) as JSON lines",
		flags: func(fs *pflag.FlagSet) {
			fs.DurationVar(&interval, "interval", 5*time.Second, "set the stats collection interval")
			fs.BoolVar(&once, "stats", false, "display the container's stats then exit")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			if interval <= 0 {
				return errors.New("duration interval must be greater than 0")
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			status, err := c.Status()
			if err != nil {
				return err
			}
			if status == libcontainer.Stopped {
				return fmt.Errorf("container with id %s is not running", c.ID())
			}
			enc := json.NewEncoder(os.Stdout)
			emitStats := func() error {
				s, err := c.Stats()
				if err != nil {
					return err
				}
				return enc.Encode(types.Event{Type: "stats", ID: c.ID(), Data: stats.Convert(s)})
			}
			if once {
				return emitStats()
			}
			oom, err := c.NotifyOOM()
			if err != nil {
				return fmt.Errorf("watch for OOM: %w", err)
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case _, ok := <-oom:
					if !ok {
						// The cgroup is gone: the container stopped.
						return nil
					}
					if err := enc.Encode(types.Event{Type: "oom", ID: c.ID()}); err != nil {
						return err
					}
				case <-tick.C:
					if err := emitStats(); err != nil {
						if s, serr := c.Status(); serr == nil && s == libcontainer.Stopped {
							return nil
						}
						return err
					}
				}
			}
		},
	}
}
