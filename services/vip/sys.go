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
}

// netIO is one interface's VRRP plumbing.
type netIO interface {
	// Recv blocks for the next protocol 112 datagram of the interface; it
	// fails once Close is called. Data is valid until the next Recv.
	Recv() (Received, error)
	// Send sends a VRRP message from src to dst with TTL 255.
	Send(b []byte, src, dst netip.Addr) error
	// AddAddrs adds addresses to the interface; present ones are fine.
	AddAddrs(addrs []netip.Prefix) error
	// DelAddrs removes addresses from the interface; absent ones are fine.
	DelAddrs(addrs []netip.Prefix) error
	// GARP broadcasts one gratuitous ARP for each address.
	GARP(addrs []netip.Prefix) error
	Close() error
}
