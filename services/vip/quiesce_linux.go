//go:build linux

package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/piimage/piimage/services"
)

// quiesceTable is the nftables table that holds back new connections to
// the VIPs during a planned handover.
const quiesceTable = "piimage-vip-quiesce"

// BlockNew drops new TCP connections (a SYN without ACK) to addrs on this
// node, in a table of its own that replaces any earlier one. Clients
// retransmit the SYN (after 1 s) and reach the successor; connections
// already open are untouched and finish here.
func (s *linuxSystem) BlockNew(addrs []netip.Addr) error {
	if err := mayTouchFirewall(); err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("vip: nftables: %w", err)
	}
	t := &nftables.Table{Name: quiesceTable, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(-250), Policy: &accept})
	for _, a := range addrs {
		if !a.Is4() {
			continue
		}
		ip := a.As4()
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip[:]},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("vip: holding back new connections: %w", err)
	}
	return nil
}

// UnblockNew removes BlockNew's table; no table is fine.
func (s *linuxSystem) UnblockNew() error {
	if err := mayTouchFirewall(); err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("vip: nftables: %w", err)
	}
	t := &nftables.Table{Name: quiesceTable, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("vip: removing the hold on new connections: %w", err)
	}
	return nil
}

// mayTouchFirewall refuses the machine's initial network namespace unless
// this process is a child of PID 1 (a service of the init on a Pi) or the
// init checked the namespace for it (services.NetworkCheckedEnv): a VIP in
// a test or a lab must never change the host's firewall.
func mayTouchFirewall() error {
	if os.Getppid() == 1 || os.Getenv(services.NetworkCheckedEnv) == "1" {
		return nil
	}
	var self, init syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return fmt.Errorf("vip: reading the network namespace: %w", err)
	}
	if err := syscall.Stat("/proc/1/ns/net", &init); err != nil {
		return fmt.Errorf("vip: reading the initial network namespace: %w", err)
	}
	if self.Ino == init.Ino && self.Dev == init.Dev {
		return errors.New("vip: not touching the firewall of the machine's initial network namespace")
	}
	return nil
}
