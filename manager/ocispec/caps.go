package ocispec

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/capability"
)

// defaultCaps is docker's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// allCaps lists every capability known to both moby/sys/capability and the
// running kernel (all known ones if the kernel cannot be asked), less those
// outside this process's bounding set: a container cannot be given what
// berthd itself cannot have (root here may lack CAP_SYS_RESOURCE, say), and
// asking for it fails the start. docker filters the same way.
var allCaps = sync.OnceValue(func() []string {
	list, err := capability.ListSupported()
	if err != nil {
		list = capability.ListKnown()
	}
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	var names []string
	for _, c := range list {
		if err == nil && !self.Get(capability.BOUNDING, c) {
			continue
		}
		names = append(names, "CAP_"+strings.ToUpper(c.String()))
	}
	return names
})

// AllCapabilities returns every capability the running kernel supports and
// this process may hold, in the spec's spelling (CAP_SYS_ADMIN...): what
// --privileged gets.
func AllCapabilities() []string { return slices.Clone(allCaps()) }

// normalizeCaps turns docker's capability names ("net_admin", "CAP_NET_ADMIN",
// "ALL") into the spec's ("CAP_NET_ADMIN", "ALL") and rejects unknown ones.
func normalizeCaps(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if c == "ALL" {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(capability.ListKnown(), capFromName(c)) {
			return nil, fmt.Errorf("unknown capability %q: see capabilities(7) for the names: %w", n, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func capFromName(name string) capability.Cap {
	for _, c := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(c.String()) == name {
			return c
		}
	}
	return -1
}

// capabilities applies docker's rules (moby oci/caps.TweakCapabilities):
// privileged gets all; --cap-add ALL gets all but the dropped ones;
// --cap-drop ALL gets only the added ones; otherwise the defaults minus the
// dropped plus the added (an added capability wins over a dropped one).
func capabilities(add, drop []string, privileged bool) ([]string, error) {
	if privileged {
		return slices.Clone(allCaps()), nil
	}
	adds, err := normalizeCaps(add)
	if err != nil {
		return nil, err
	}
	drops, err := normalizeCaps(drop)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(adds, "ALL"):
		for _, c := range allCaps() {
			if !slices.Contains(drops, c) {
				caps = append(caps, c)
			}
		}
		return caps, nil
	case slices.Contains(drops, "ALL"):
		return append([]string{}, adds...), nil
	}
	for _, c := range defaultCaps {
		if !slices.Contains(drops, c) {
			caps = append(caps, c)
		}
	}
	for _, c := range adds {
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps, nil
}
