package vip

import (
	"net/netip"
)

// system is what the service needs from the operating system; the Linux
// driver implements it, tests may fake it.
type system interface {
	// Open prepares the VRRP socket, the ARP socket and the address
	// handle of one interface. join says whether to join 224.0.0.18.
	Open(ifname string, join bool) (netIO, error)
	// LinkUp reports whether the interface is up and has carrier.
	LinkUp(ifname string) (bool, error)
	// BlockNew holds back new TCP connections to addrs on this node (a
	// planned handover: see Service.quiesce); UnblockNew lets them in
	// again. Both replace what an earlier call did.
	BlockNew(addrs []netip.Addr) error
	UnblockNew() error
}

// netIO is one interface's VRRP plumbing. The vmac argument of its methods
// is 0 for a router using the interface's own MAC, or the VRID of a router
// using the virtual MAC (overlay virtual_mac): its addresses then live on a
// macvlan device vrrp.<VRID> with MAC 00-00-5E-00-01-<VRID>, created by
// AddAddrs and deleted by DelAddrs, and its advertisements and gratuitous
// ARPs come from that MAC.
type netIO interface {
	// Recv blocks for the next protocol 112 datagram of the interface; it
	// fails once Close is called. Data is valid until the next Recv.
	Recv() (Received, error)
	// Send sends a VRRP message from src to dst with TTL 255.
	Send(vmac uint8, b []byte, src, dst netip.Addr) error
	// AddAddrs adds addresses to the interface; present ones are fine.
	AddAddrs(vmac uint8, addrs []netip.Prefix) error
	// DelAddrs removes addresses from the interface; absent ones are fine.
	DelAddrs(vmac uint8, addrs []netip.Prefix) error
	// GARP broadcasts one gratuitous ARP for each address.
	GARP(vmac uint8, addrs []netip.Prefix) error
	Close() error
}
