package nftrule

import (
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/berth-project/berth/integration/testenv"
)

// TestFindAndRemove builds rules with AddrMatch in a throwaway namespace,
// reads them back as nft prints them, finds them by comment prefix and
// removes some.
func TestFindAndRemove(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("nft"), testenv.Program("ip"))
	n := testenv.NetNS(t)
	err := n.Do(func(ns.NetNS) error {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()

		// No table yet: nothing, and no error.
		if rs, err := Find(c, nftables.TableFamilyIPv4, "t", []string{"c"}, ""); err != nil || len(rs) != 0 {
			t.Errorf("Find without the table = %v, %v", rs, err)
		}

		for _, fam := range Families {
			tb := c.AddTable(&nftables.Table{Family: fam, Name: "t"})
			ch := c.AddChain(&nftables.Chain{Name: "c", Table: tb, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
			src, dst := "10.99.1.2", net.IPNet{IP: net.IPv4(10, 99, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}
			if fam == nftables.TableFamilyIPv6 {
				src, dst = "fd99::2", net.IPNet{IP: net.ParseIP("fd99::"), Mask: net.CIDRMask(64, 128)}
			}
			for _, owner := range []string{"a", "b"} {
				e := append(AddrMatch(fam, false, HostNet(net.ParseIP(src)), expr.CmpOpEq), AddrMatch(fam, true, dst, expr.CmpOpNeq)...)
				c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: append(e, &expr.Masq{}), UserData: Comment("test " + owner + " " + src)})
			}
		}
		if err := c.Flush(); err != nil {
			return err
		}

		out, err := exec.Command("ip", "netns", "exec", filepath.Base(n.Path()), "nft", "list", "ruleset").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list ruleset: %v\n%s", err, out)
		}
		for _, want := range []string{
			`ip saddr 10.99.1.2 ip daddr != 10.99.0.0/16 masquerade comment "test a 10.99.1.2"`,
			`ip6 saddr fd99::2 ip6 daddr != fd99::/64 masquerade comment "test b fd99::2"`,
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the ruleset lacks\n\t%s\nit is\n%s", want, out)
			}
		}

		var got []string
		for _, fam := range Families {
			rs, err := Find(c, fam, "t", []string{"c"}, "test a ")
			if err != nil {
				return err
			}
			for _, r := range rs {
				got = append(got, CommentOf(r))
			}
		}
		if !slices.Equal(got, []string{"test a 10.99.1.2", "test a fd99::2"}) {
			t.Errorf("Find(test a) = %v", got)
		}

		// Remove the IPv6 rules of every owner.
		if err := Remove(c, "t", []string{"c"}, "test ", func(comment string) bool { return strings.Contains(comment, ":") }); err != nil {
			return err
		}
		got = nil
		for _, fam := range Families {
			rs, err := Find(c, fam, "t", []string{"c"}, "")
			if err != nil {
				return err
			}
			for _, r := range rs {
				got = append(got, CommentOf(r))
			}
		}
		if !slices.Equal(got, []string{"test a 10.99.1.2", "test b 10.99.1.2"}) {
			t.Errorf("after removing the IPv6 rules: %v", got)
		}
		// Nothing left to remove is not an error.
		return Remove(c, "t", []string{"c", "no-such-chain"}, "test ", func(comment string) bool { return strings.Contains(comment, ":") })
	})
	if err != nil {
		t.Fatal(err)
	}
}
