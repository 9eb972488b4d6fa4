package containers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/berth-project/berth/manager/log"
)

// Containers on a user-defined network find each other by name, as on
// docker's: berth keeps each one's /etc/hosts (a file berthd owns,
// bind-mounted) listing the others running on the network, rewritten in
// place as they start and stop. No resolver is involved: names resolve
// through the C library's reading of /etc/hosts, offline. As in docker,
// the default bridge network has no such names.

// peersMarker starts the part of a hosts file that lists the network's
// other containers; what comes before it is the container's own.
const peersMarker = "# berth: other containers on network "

// syncHosts rewrites the hosts files of the running containers on network
// name so that each lists the others.
func (s *Service) syncHosts(ctx context.Context, network string) {
	if network == "bridge" || network == "host" || network == "none" || network == "" {
		return
	}
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	recs, err := s.records()
	if err != nil {
		log.L(ctx).Warn("name resolution on a network: list the containers", "network", network, "error", err)
		return
	}
	type peer struct{ id, name, ip, hostname string }
	var peers []peer
	for _, r := range recs {
		if r.GetConfig().GetNetworkMode() != network || r.GetState().GetStatus() != StatusRunning && r.GetState().GetStatus() != StatusPaused {
			continue
		}
		if ip := r.GetNetwork().GetIpAddress(); ip != "" {
			peers = append(peers, peer{r.GetId(), r.GetName(), ip, r.GetConfig().GetHostname()})
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].name < peers[j].name })
	for _, self := range peers {
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s%s\n", peersMarker, network)
		for _, p := range peers {
			if p.id == self.id {
				continue
			}
			// The name, the short ID and the hostname, as docker's
			// resolver answers for them.
			fmt.Fprintf(&b, "%s\t%s %s", p.ip, p.name, p.id[:12])
			if p.hostname != "" && p.hostname != p.id[:12] && p.hostname != p.name {
				fmt.Fprintf(&b, " %s", p.hostname)
			}
			b.WriteByte('\n')
		}
		if err := rewriteHosts(filepath.Join(s.dir(self.id), "hosts"), b.Bytes()); err != nil {
			log.L(ctx).Warn("name resolution on a network: rewrite a hosts file", "id", self.id, "error", err)
		}
	}
}

// rewriteHosts replaces the peers part of a hosts file, in place: the
// container sees the file through a bind mount of this very inode, which a
// rename would leave behind.
func rewriteHosts(path string, peers []byte) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if i := bytes.Index(old, []byte(peersMarker)); i >= 0 {
		old = old[:i]
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(old, peers...)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
