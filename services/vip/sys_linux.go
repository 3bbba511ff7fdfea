//go:build linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// linuxSystem is the Linux driver: a raw IPv4 socket of protocol 112 per
// interface, netlink for addresses and links, a packet socket for ARP.
type linuxSystem struct {
	mu sync.Mutex
	nl *netlink.Handle
}

func newSystem() (system, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	return &linuxSystem{nl: h}, nil
}

func (s *linuxSystem) LinkUp(ifname string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.nl.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("reading link %s: %w", ifname, err)
	}
	a := l.Attrs()
	up := a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
	return up, nil
}

type linuxIO struct {
	sys   *linuxSystem
	ifi   *net.Interface
	pc    net.PacketConn
	p     *ipv4.PacketConn
	arp   *packet.Conn
	nlh   *netlink.Handle
	link  netlink.Link
	buf   []byte
	close sync.Once

	vmu          sync.Mutex
	vmacs        map[uint8]*vmacDev // routers using the virtual MAC, while master
	savedSysctls map[string]string  // the interface's values before tuneBase
}

func (s *linuxSystem) Open(ifname string, join bool) (netIO, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("finding interface %s: %w", ifname, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) })
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip4:%d", Protocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("opening VRRP socket on %s: %w", ifname, err)
	}
	io := &linuxIO{sys: s, ifi: ifi, pc: pc, p: ipv4.NewPacketConn(pc), buf: make([]byte, 1500), vmacs: map[uint8]*vmacDev{}}
	if err := io.setup(join); err != nil {
		io.Close()
		return nil, fmt.Errorf("setting up VRRP socket on %s: %w", ifname, err)
	}
	io.arp, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		io.Close()
		return nil, fmt.Errorf("opening ARP socket on %s: %w", ifname, err)
	}
	s.mu.Lock()
	io.link, err = s.nl.LinkByIndex(ifi.Index)
	s.mu.Unlock()
	if err != nil {
		io.Close()
		return nil, fmt.Errorf("reading link %s: %w", ifname, err)
	}
	return io, nil
}

func (io *linuxIO) setup(join bool) error {
	p := io.p
	if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("asking for control messages: %w", err)
	}
	if join {
		if err := p.JoinGroup(io.ifi, &net.IPAddr{IP: Group.AsSlice()}); err != nil {
			return fmt.Errorf("joining %s: %w", Group, err)
		}
	}
	for _, step := range []struct {
		what string
		err  error
	}{
		{"setting multicast interface", p.SetMulticastInterface(io.ifi)},
		{"setting multicast TTL", p.SetMulticastTTL(TTL)},
		{"setting TTL", p.SetTTL(TTL)},
		{"turning multicast loopback off", p.SetMulticastLoopback(false)},
		// Precedence "internetwork control", as keepalived sends.
		{"setting TOS", p.SetTOS(0xc0)},
	} {
		if step.err != nil {
			return fmt.Errorf("%s: %w", step.what, step.err)
		}
	}
	return nil
}

func (io *linuxIO) Recv() (Received, error) {
	for {
		n, cm, src, err := io.p.ReadFrom(io.buf)
		if err != nil {
			return Received{}, err
		}
		if cm != nil && cm.IfIndex != 0 && cm.IfIndex != io.ifi.Index {
			continue
		}
		rx := Received{Data: io.buf[:n]}
		if ia, ok := src.(*net.IPAddr); ok {
			rx.Src, _ = netip.AddrFromSlice(ia.IP.To4())
		}
		if cm != nil {
			rx.TTL = cm.TTL
			rx.Dst, _ = netip.AddrFromSlice(cm.Dst.To4())
		}
		return rx, nil
	}
}

func (io *linuxIO) Send(vmac uint8, b []byte, src, dst netip.Addr) error {
	p, index := io.p, io.ifi.Index
	if vmac != 0 {
		// RFC 5798 section 7.2: from the virtual MAC while it is ours.
		if vp, vi := io.vmacSocket(vmac); vp != nil {
			p, index = vp, vi
		}
	}
	cm := &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: index}
	if _, err := p.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("sending VRRP to %s on %s: %w", dst, io.ifi.Name, err)
	}
	return nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
}

func (io *linuxIO) AddAddrs(vmac uint8, addrs []netip.Prefix) error {
	if vmac != 0 {
		return io.addVMAC(vmac, addrs)
	}
	var errs []error
	io.sys.mu.Lock()
	defer io.sys.mu.Unlock()
	for _, a := range addrs {
		if err := io.sys.nl.AddrAdd(io.link, nlAddr(a)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("adding %s to %s: %w", a, io.ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (io *linuxIO) DelAddrs(vmac uint8, addrs []netip.Prefix) error {
	if vmac != 0 {
		return io.delVMAC(vmac)
	}
	var errs []error
	io.sys.mu.Lock()
	defer io.sys.mu.Unlock()
	for _, a := range addrs {
		err := io.sys.nl.AddrDel(io.link, nlAddr(a))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing %s from %s: %w", a, io.ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (io *linuxIO) GARP(vmac uint8, addrs []netip.Prefix) error {
	var errs []error
	mac := io.ifi.HardwareAddr
	if vmac != 0 {
		mac = VirtualMAC(vmac)
	}
	bcast := &packet.Addr{HardwareAddr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for _, a := range addrs {
		if _, err := io.arp.WriteTo(garpFrame(mac, a.Addr()), bcast); err != nil {
			errs = append(errs, fmt.Errorf("sending gratuitous ARP for %s on %s: %w", a.Addr(), io.ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (io *linuxIO) Close() error {
	var err error
	io.close.Do(func() {
		err = errors.Join(io.closeVMACs(), io.pc.Close())
		if io.arp != nil {
			err = errors.Join(err, io.arp.Close())
		}
	})
	return err
}
