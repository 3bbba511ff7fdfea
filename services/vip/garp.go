package vip

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// VirtualMAC returns the VRRP virtual MAC address 00-00-5E-00-01-{VRID}
// (RFC 5798 section 7.3).
func VirtualMAC(vrid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
}

// garpFrame builds a gratuitous ARP request (RFC 5227 section 3: sender and
// target protocol address both ip, target hardware address zero) from mac,
// broadcast in an Ethernet frame padded to the 60-byte minimum.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 60)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:], 0x0806) // ARP
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:], 1)      // hardware type Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // protocol IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	ip4 := ip.As4()
	copy(a[8:14], mac)
	copy(a[14:18], ip4[:])
	copy(a[24:28], ip4[:])
	return b
}
