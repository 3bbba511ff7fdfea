//go:build linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// in6AddrGenModeNone keeps the kernel from giving a device an IPv6
// link-local address (and so from sending neighbour discovery from it).
const in6AddrGenModeNone = 1

// vmacDev is the macvlan device of a router using the virtual MAC, and the
// socket its advertisements leave from.
type vmacDev struct {
	name  string
	link  netlink.Link
	index int
	pc    net.PacketConn
	p     *ipv4.PacketConn
}

// vmacName is the device name of router vrid, as keepalived names them.
func vmacName(vrid uint8) string { return fmt.Sprintf("vrrp.%d", vrid) }

// baseSysctls keep the carrying interface from answering ARP for the VIP
// (which lives on the macvlan: arp_ignore 1 answers only for the receiving
// device's addresses) and from asking with the VIP as sender with its own
// MAC (arp_announce 2 picks the device's own address), either of which
// would teach clients the interface's MAC instead of the virtual one.
var baseSysctls = []struct{ key, val string }{
	{"arp_ignore", "1"},
	{"arp_announce", "2"},
}

func sysctlPath(ifname, key string) string {
	return filepath.Join("/proc/sys/net/ipv4/conf", ifname, key)
}

// addVMAC creates (or replaces a stale) macvlan device for router vrid with
// the virtual MAC, puts addrs on it and opens its sending socket.
func (io *linuxIO) addVMAC(vrid uint8, addrs []netip.Prefix) error {
	io.vmu.Lock()
	defer io.vmu.Unlock()
	d := io.vmacs[vrid]
	if d == nil {
		if err := io.tuneBase(); err != nil {
			return err
		}
		var err error
		if d, err = io.createVMAC(vrid); err != nil {
			return err
		}
		io.vmacs[vrid] = d
	}
	var errs []error
	io.sys.mu.Lock()
	defer io.sys.mu.Unlock()
	for _, a := range addrs {
		na := nlAddr(a)
		// No second route to the subnet: replies keep leaving by the
		// carrying interface.
		na.Flags = unix.IFA_F_NOPREFIXROUTE
		if err := io.sys.nl.AddrAdd(d.link, na); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("adding %s to %s: %w", a, d.name, err))
		}
	}
	return errors.Join(errs...)
}

// tuneBase sets baseSysctls on the carrying interface once, remembering the
// old values for Close.
func (io *linuxIO) tuneBase() error {
	if io.savedSysctls != nil {
		return nil
	}
	io.savedSysctls = map[string]string{}
	for _, s := range baseSysctls {
		p := sysctlPath(io.ifi.Name, s.key)
		old, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if err := os.WriteFile(p, []byte(s.val), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", p, err)
		}
		io.savedSysctls[p] = strings.TrimSpace(string(old))
	}
	return nil
}

// restoreBase undoes tuneBase.
func (io *linuxIO) restoreBase() error {
	var errs []error
	for p, v := range io.savedSysctls {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", p, err))
		}
	}
	io.savedSysctls = nil
	return errors.Join(errs...)
}

func (io *linuxIO) createVMAC(vrid uint8) (*vmacDev, error) {
	name := vmacName(vrid)
	io.sys.mu.Lock()
	err := io.deleteStale(name)
	if err == nil {
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: io.ifi.Index, HardwareAddr: VirtualMAC(vrid)},
			// Bridge, not private: a private macvlan takes every multicast
			// frame whose source MAC is its own as a reflection of its own
			// and hides it from the parent, so the other router's
			// advertisements, sent from the same virtual MAC, would never
			// reach the VRRP socket on the parent.
			Mode: netlink.MACVLAN_MODE_BRIDGE,
		}
		if err = io.sys.nl.LinkAdd(mv); err != nil {
			err = fmt.Errorf("creating macvlan %s on %s: %w", name, io.ifi.Name, err)
		}
	}
	var link netlink.Link
	if err == nil {
		link, err = io.sys.nl.LinkByName(name)
	}
	if err == nil {
		// Best effort: without IPv6 there is nothing to turn off.
		io.sys.nl.LinkSetIP6AddrGenMode(link, in6AddrGenModeNone)
		for key, val := range map[string]string{"arp_ignore": "1", "rp_filter": "0"} {
			os.WriteFile(sysctlPath(name, key), []byte(val), 0o644)
		}
		if err = io.sys.nl.LinkSetUp(link); err != nil {
			err = fmt.Errorf("setting %s up: %w", name, err)
		}
	}
	io.sys.mu.Unlock()
	if err != nil {
		if link != nil {
			io.sys.mu.Lock()
			io.sys.nl.LinkDel(link)
			io.sys.mu.Unlock()
		}
		return nil, err
	}
	d := &vmacDev{name: name, link: link, index: link.Attrs().Index}
	if err := d.open(); err != nil {
		io.sys.mu.Lock()
		io.sys.nl.LinkDel(link)
		io.sys.mu.Unlock()
		return nil, err
	}
	return d, nil
}

// deleteStale deletes a macvlan named name on our interface, left by a
// crashed run; a device of that name that is anything else is an error.
// The caller holds io.sys.mu.
func (io *linuxIO) deleteStale(name string) error {
	l, err := io.sys.nl.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("looking for %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Macvlan); !ok || l.Attrs().ParentIndex != io.ifi.Index {
		return fmt.Errorf("%s exists and is not a macvlan of %s; refusing to touch it", name, io.ifi.Name)
	}
	if err := io.sys.nl.LinkDel(l); err != nil {
		return fmt.Errorf("deleting stale %s: %w", name, err)
	}
	return nil
}

// open opens the advertisement socket of the device: raw protocol 112 bound
// to it (so frames leave with the virtual MAC), reading nothing.
func (d *vmacDev) open() error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), d.name) })
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip4:%d", Protocol), "0.0.0.0")
	if err != nil {
		return fmt.Errorf("opening VRRP socket on %s: %w", d.name, err)
	}
	p := ipv4.NewPacketConn(pc)
	drop, _ := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	ifi := &net.Interface{Index: d.index, Name: d.name}
	for _, step := range []struct {
		what string
		err  error
	}{
		{"filtering out every received packet", p.SetBPF(drop)},
		{"setting multicast interface", p.SetMulticastInterface(ifi)},
		{"setting multicast TTL", p.SetMulticastTTL(TTL)},
		{"setting TTL", p.SetTTL(TTL)},
		{"turning multicast loopback off", p.SetMulticastLoopback(false)},
		{"setting TOS", p.SetTOS(0xc0)},
	} {
		if step.err != nil {
			pc.Close()
			return fmt.Errorf("%s on %s: %w", step.what, d.name, step.err)
		}
	}
	d.pc, d.p = pc, p
	return nil
}

// delVMAC deletes router vrid's macvlan device (and so its addresses),
// also when a crashed run left it.
func (io *linuxIO) delVMAC(vrid uint8) error {
	io.vmu.Lock()
	defer io.vmu.Unlock()
	if d := io.vmacs[vrid]; d != nil {
		d.pc.Close()
		delete(io.vmacs, vrid)
	}
	io.sys.mu.Lock()
	defer io.sys.mu.Unlock()
	return io.deleteStale(vmacName(vrid))
}

// vmacSocket returns router vrid's advertisement socket and device index,
// or nil while it has no device.
func (io *linuxIO) vmacSocket(vrid uint8) (*ipv4.PacketConn, int) {
	io.vmu.Lock()
	defer io.vmu.Unlock()
	if d := io.vmacs[vrid]; d != nil {
		return d.p, d.index
	}
	return nil, 0
}

// closeVMACs deletes every device and restores the interface's settings.
func (io *linuxIO) closeVMACs() error {
	io.vmu.Lock()
	var ids []uint8
	for id := range io.vmacs {
		ids = append(ids, id)
	}
	io.vmu.Unlock()
	var errs []error
	for _, id := range ids {
		errs = append(errs, io.delVMAC(id))
	}
	io.vmu.Lock()
	errs = append(errs, io.restoreBase())
	io.vmu.Unlock()
	return errors.Join(errs...)
}
