package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// VRRP constants from RFC 5798 section 5 and RFC 3768 section 5.
const (
	// Protocol is the IP protocol number of VRRP.
	Protocol = 112
	// TTL is the IPv4 TTL every advertisement is sent with and must arrive with.
	TTL = 255
	// OwnerPriority is the priority of the router that owns the addresses.
	OwnerPriority = 255
	// typeAdvertisement is the only VRRP packet type.
	typeAdvertisement = 1
	headerLen         = 8
	v2AuthLen         = 8
	// maxAddrs bounds the addresses in one advertisement so that it fits a
	// 1500-byte frame.
	maxAddrs = 255
)

// Group is the IPv4 multicast group VRRP advertisements are sent to.
var Group = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// Errors Parse returns; the driver counts dropped packets by them.
var (
	ErrTruncated = errors.New("truncated VRRP packet")
	ErrLength    = errors.New("VRRP packet length does not match its address count")
	ErrVersion   = errors.New("unsupported VRRP version")
	ErrType      = errors.New("unknown VRRP packet type")
	ErrChecksum  = errors.New("bad VRRP checksum")
	ErrAuth      = errors.New("VRRPv2 authentication is not supported")
	ErrNoAddrs   = errors.New("VRRP advertisement names no address")
)

// Packet is one VRRP advertisement: version 3 (RFC 5798) or version 2
// (RFC 3768), IPv4 only.
type Packet struct {
	// Version is 2 or 3.
	Version int
	// VRID is the virtual router id, 1..255.
	VRID uint8
	// Priority is the sender's priority; 0 means it stops being master.
	Priority uint8
	// Interval is the sender's advertisement interval: a multiple of 10ms
	// in version 3, of a second in version 2.
	Interval time.Duration
	// Addrs are the virtual router's IPv4 addresses.
	Addrs []netip.Addr
	// Checksum is the checksum field as received; Marshal computes its own.
	Checksum uint16
}

// Parse decodes the VRRP part of an IPv4 datagram (after the IP header). It
// checks everything that b alone shows, including the version 2 checksum.
// The version 3 checksum covers the IP source and destination too: use
// ParseFrom to check it.
func Parse(b []byte) (*Packet, error) {
	if len(b) < headerLen {
		return nil, ErrTruncated
	}
	p := &Packet{Version: int(b[0] >> 4), VRID: b[1], Priority: b[2], Checksum: binary.BigEndian.Uint16(b[6:8])}
	if p.Version != 2 && p.Version != 3 {
		return nil, fmt.Errorf("%w %d", ErrVersion, p.Version)
	}
	if t := b[0] & 0x0f; t != typeAdvertisement {
		return nil, fmt.Errorf("%w %d", ErrType, t)
	}
	n := int(b[3])
	want := headerLen + 4*n
	if p.Version == 2 {
		want += v2AuthLen
	}
	switch {
	case len(b) < want:
		return nil, ErrTruncated
	case len(b) > want:
		return nil, fmt.Errorf("%w: %d bytes for %d addresses", ErrLength, len(b), n)
	case n == 0:
		return nil, ErrNoAddrs
	}
	if p.Version == 2 {
		if b[4] != 0 {
			return nil, fmt.Errorf("%w (type %d)", ErrAuth, b[4])
		}
		p.Interval = time.Duration(b[5]) * time.Second
		if checksum(0, b) != 0 {
			return nil, ErrChecksum
		}
	} else {
		p.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&0x0fff) * 10 * time.Millisecond
	}
	p.Addrs = make([]netip.Addr, n)
	for i := range n {
		p.Addrs[i] = netip.AddrFrom4([4]byte(b[headerLen+4*i:]))
	}
	return p, nil
}

// ParseFrom decodes a VRRP packet that came from src to dst and, for
// version 3, checks its checksum over the IPv4 pseudo-header (RFC 5798
// section 5.2.8).
func ParseFrom(b []byte, src, dst netip.Addr) (*Packet, error) {
	p, err := Parse(b)
	if err != nil {
		return nil, err
	}
	if p.Version == 3 && checksum(pseudoSum(src, dst, len(b)), b) != 0 {
		return nil, ErrChecksum
	}
	return p, nil
}

// Marshal encodes p as sent from src to dst. The checksum of version 3
// covers src and dst; version 2 ignores them. Marshal panics on a packet no
// receiver would accept (bad version, no address, interval out of range):
// the caller validates its configuration first.
func (p *Packet) Marshal(src, dst netip.Addr) []byte {
	if len(p.Addrs) == 0 || len(p.Addrs) > maxAddrs {
		panic(fmt.Sprintf("vip: VRRP packet with %d addresses", len(p.Addrs)))
	}
	n := headerLen + 4*len(p.Addrs)
	if p.Version == 2 {
		n += v2AuthLen
	}
	b := make([]byte, n)
	b[0] = byte(p.Version)<<4 | typeAdvertisement
	b[1] = p.VRID
	b[2] = p.Priority
	b[3] = byte(len(p.Addrs))
	for i, a := range p.Addrs {
		a4 := a.As4()
		copy(b[headerLen+4*i:], a4[:])
	}
	var sum uint32
	switch p.Version {
	case 2:
		secs := p.Interval / time.Second
		if secs < 1 || secs > 255 || p.Interval%time.Second != 0 {
			panic(fmt.Sprintf("vip: VRRPv2 interval %s", p.Interval))
		}
		b[4] = 0 // authentication type: none
		b[5] = byte(secs)
	case 3:
		cs := p.Interval / (10 * time.Millisecond)
		if cs < 1 || cs > 0x0fff || p.Interval%(10*time.Millisecond) != 0 {
			panic(fmt.Sprintf("vip: VRRPv3 interval %s", p.Interval))
		}
		binary.BigEndian.PutUint16(b[4:], uint16(cs))
		sum = pseudoSum(src, dst, n)
	default:
		panic(fmt.Sprintf("vip: VRRP version %d", p.Version))
	}
	binary.BigEndian.PutUint16(b[6:], ^fold(addBytes(sum, b)))
	return b
}

// pseudoSum is the unfolded sum of the IPv4 pseudo-header of RFC 5798
// section 5.2.8 (the one TCP and UDP use).
func pseudoSum(src, dst netip.Addr, length int) uint32 {
	s, d := src.As4(), dst.As4()
	var ph [12]byte
	copy(ph[0:], s[:])
	copy(ph[4:], d[:])
	ph[9] = Protocol
	binary.BigEndian.PutUint16(ph[10:], uint16(length))
	return addBytes(0, ph[:])
}

// checksum returns the folded one's complement of sum plus b's 16-bit words:
// zero when b (with its checksum field) is intact.
func checksum(sum uint32, b []byte) uint16 {
	return ^fold(addBytes(sum, b))
}

func addBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
