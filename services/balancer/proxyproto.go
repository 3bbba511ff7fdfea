package balancer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// proxyV2Sig starts every PROXY protocol version 2 header (the spec's
// section 2.2).
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// appendProxyV2 appends a PROXY v2 header for a TCP connection from src to
// dst (the address the client connected to). Mixed families are sent as
// IPv6 (IPv4-mapped); an address that is not TCP gives a LOCAL header.
func appendProxyV2(b []byte, src, dst net.Addr) []byte {
	s, ok1 := addrPort(src)
	d, ok2 := addrPort(dst)
	if !ok1 || !ok2 {
		return appendProxyV2Local(b)
	}
	b = append(b, proxyV2Sig...)
	b = append(b, 0x21) // version 2, command PROXY
	if s.Addr().Unmap().Is4() && d.Addr().Unmap().Is4() {
		b = append(b, 0x11, 0, 12) // TCP over IPv4, 12 address bytes
		s4, d4 := s.Addr().Unmap().As4(), d.Addr().Unmap().As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21, 0, 36) // TCP over IPv6, 36 address bytes
		s16, d16 := s.Addr().As16(), d.Addr().As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// appendProxyV2Local appends a LOCAL header: a connection the balancer
// made on its own (a health check), with no client to name.
func appendProxyV2Local(b []byte) []byte {
	b = append(b, proxyV2Sig...)
	return append(b, 0x20, 0x00, 0, 0)
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	return ap, ap.Addr().IsValid()
}

// proxyV2Header is a parsed PROXY v2 header.
type proxyV2Header struct {
	Local    bool
	Src, Dst netip.AddrPort
}

// parseProxyV2 parses a PROXY v2 header at the start of b and returns it
// and its length. It accepts what appendProxyV2 writes and skips TLVs.
func parseProxyV2(b []byte) (proxyV2Header, int, error) {
	var h proxyV2Header
	if len(b) < 16 {
		return h, 0, errors.New("PROXY v2 header: too short")
	}
	if !bytes.Equal(b[:12], proxyV2Sig) {
		return h, 0, errors.New("PROXY v2 header: bad signature")
	}
	if b[12]>>4 != 2 {
		return h, 0, errors.New("PROXY v2 header: not version 2")
	}
	n := int(binary.BigEndian.Uint16(b[14:16]))
	if len(b) < 16+n {
		return h, 0, errors.New("PROXY v2 header: truncated")
	}
	body := b[16 : 16+n]
	switch b[12] & 0xf {
	case 0:
		h.Local = true
		return h, 16 + n, nil
	case 1:
	default:
		return h, 0, errors.New("PROXY v2 header: unknown command")
	}
	switch b[13] {
	case 0x11:
		if len(body) < 12 {
			return h, 0, errors.New("PROXY v2 header: short IPv4 addresses")
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 0x21:
		if len(body) < 36 {
			return h, 0, errors.New("PROXY v2 header: short IPv6 addresses")
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	default:
		return h, 0, errors.New("PROXY v2 header: unsupported family")
	}
	return h, 16 + n, nil
}
