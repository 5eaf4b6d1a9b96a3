package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// EnsureMasquerade makes the nftables table `ip TABLE` contain exactly one
// rule: packets from subnet leaving through wanIf are masqueraded to
// wanIf's address. It also turns on IPv4 forwarding. Both act on the calling
// thread's namespace.
//
// The table is ours alone: it is replaced whole in one atomic transaction,
// so repeated calls converge without ever leaving a gap or a duplicate rule,
// and nobody else's tables or chains are touched.
func EnsureMasquerade(table string, subnet netip.Prefix, wanIf string) error {
	if err := ensureMasquerade(table, subnet, wanIf); err != nil {
		return fmt.Errorf("ensure masquerade %q (%s out of %q): %w", table, subnet, wanIf, err)
	}
	return nil
}

func ensureMasquerade(table string, subnet netip.Prefix, wanIf string) error {
	switch {
	case table == "":
		return errors.New("no table name")
	case !subnet.IsValid() || !subnet.Addr().Is4():
		return errors.New("subnet is not an IPv4 prefix")
	case wanIf == "" || len(wanIf) > unix.IFNAMSIZ-1:
		return fmt.Errorf("WAN interface name must be 1 to %d bytes", unix.IFNAMSIZ-1)
	}
	subnet = subnet.Masked()

	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
	replaceTable(c, t)
	ch := c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	// oifname WAN ip saddr SUBNET masquerade
	c.AddRule(&nftables.Rule{Table: t, Chain: ch,
		Exprs: slices.Concat(ifname(expr.MetaKeyOIFNAME, wanIf), inPrefix(true, subnet), []expr.Any{&expr.Masq{}})})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return writeSysctl("net/ipv4/ip_forward", "1")
}

// DeleteMasquerade removes the table `ip TABLE` from the calling thread's
// namespace; it is not an error if it does not exist. Forwarding is left on:
// something else on the gateway may rely on it.
func DeleteMasquerade(table string) error {
	if table == "" {
		return fmt.Errorf("delete masquerade: no table name")
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("delete masquerade %q: %w", table, err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
	// Adding first makes the delete succeed when the table is already gone.
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete masquerade %q: nftables: %w", table, err)
	}
	return nil
}
