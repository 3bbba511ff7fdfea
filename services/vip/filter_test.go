package vip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	v3 := testConfig(func(c *Config) {
		c.Addrs = []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("192.0.2.101/32")}
	})
	v2 := testConfig(func(c *Config) { c.VRID, c.Version = 52, 2 })
	uni := testConfig(func(c *Config) { c.VRID, c.Peers = 53, []netip.Addr{upper} })
	routers := []*Config{v3, v2, uni}
	src := upper
	good := goldens[0].bytes // v3 VRID 51 from 192.0.2.2... rebuild from upper
	pkt := func(p Packet, src, dst netip.Addr) []byte { return p.Marshal(src, dst) }
	base := Packet{Version: 3, VRID: 51, Priority: 120, Interval: ms(200), Addrs: []netip.Addr{vip1, vip2}}
	with := func(f func(p *Packet)) Packet { p := base; f(&p); return p }
	tests := []struct {
		name   string
		rx     Received
		router int
		prio   int
		drop   string
	}{
		{"good v3", Received{pkt(base, src, Group), src, Group, 255}, 0, 120, ""},
		{"addresses in another order", Received{pkt(with(func(p *Packet) { p.Addrs = []netip.Addr{vip2, vip1} }), src, Group), src, Group, 255}, 0, 120, ""},
		{"good v2", Received{pkt(Packet{Version: 2, VRID: 52, Priority: 1, Interval: time.Second, Addrs: []netip.Addr{vip1}}, src, Group), src, Group, 255}, 1, 1, ""},
		{"good unicast", Received{pkt(with(func(p *Packet) { p.VRID, p.Addrs = 53, []netip.Addr{vip1} }), src, ours), src, ours, 255}, 2, 120, ""},
		{"ttl 64", Received{pkt(base, src, Group), src, Group, 64}, -1, 0, DropTTL},
		{"ttl 254 (routed)", Received{pkt(base, src, Group), src, Group, 254}, -1, 0, DropTTL},
		{"checksum for other source", Received{pkt(base, lower, Group), src, Group, 255}, -1, 0, DropChecksum},
		{"truncated", Received{pkt(base, src, Group)[:10], src, Group, 255}, -1, 0, DropTruncated},
		{"unknown vrid", Received{pkt(with(func(p *Packet) { p.VRID = 9 }), src, Group), src, Group, 255}, -1, 0, DropVRID},
		{"v2 packet for v3 router", Received{pkt(Packet{Version: 2, VRID: 51, Priority: 1, Interval: time.Second, Addrs: []netip.Addr{vip1}}, src, Group), src, Group, 255}, 0, 0, DropVersion},
		{"v2 interval mismatch", Received{pkt(Packet{Version: 2, VRID: 52, Priority: 1, Interval: 2 * time.Second, Addrs: []netip.Addr{vip1}}, src, Group), src, Group, 255}, 1, 0, DropInterval},
		{"v3 interval 0", Received{zeroInterval(pkt(base, src, Group), src, Group), src, Group, 255}, 0, 0, DropInterval},
		{"own packet looped back", Received{pkt(base, ours, Group), ours, Group, 255}, 0, 0, DropOwn},
		{"unknown unicast peer", Received{pkt(with(func(p *Packet) { p.VRID, p.Addrs = 53, []netip.Addr{vip1} }), lower, ours), lower, ours, 255}, 2, 0, DropPeer},
		{"address mismatch", Received{pkt(with(func(p *Packet) { p.Addrs = []netip.Addr{vip1} }), src, Group), src, Group, 255}, 0, 0, DropAddresses},
		{"address mismatch from owner", Received{pkt(with(func(p *Packet) { p.Priority, p.Addrs = 255, []netip.Addr{vip1} }), src, Group), src, Group, 255}, 0, 255, ""},
		{"golden from elsewhere", Received{good, goldenSrc, Group, 255}, 0, 0, DropOwn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, ev, drop := classify(tt.rx, routers)
			if i != tt.router || drop != tt.drop || (drop == "" && ev.Priority != tt.prio) {
				t.Errorf("classify = %d, %+v, %q; want router %d prio %d drop %q", i, ev, drop, tt.router, tt.prio, tt.drop)
			}
		})
	}
}

// zeroInterval rewrites a v3 packet's interval to 0 with a valid checksum.
func zeroInterval(b []byte, src, dst netip.Addr) []byte {
	b = bytes.Clone(b)
	b[4], b[5], b[6], b[7] = 0, 0, 0, 0
	s := ^fold(addBytes(pseudoSum(src, dst, len(b)), b))
	b[6], b[7] = byte(s>>8), byte(s)
	return b
}

func TestGARPFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
		0x02, 0, 0, 0, 0, 0x01, // source MAC
		0x08, 0x06, // ARP
		0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, sizes, request
		0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 100, // sender
		0, 0, 0, 0, 0, 0, 192, 0, 2, 100, // target: same IP
	}
	want = append(want, make([]byte, 60-len(want))...)
	if got := garpFrame(mac, vip1); !bytes.Equal(got, want) {
		t.Errorf("garpFrame = % x\nwant        % x", got, want)
	}
	if got := VirtualMAC(51).String(); got != "00:00:5e:00:01:33" {
		t.Errorf("VirtualMAC(51) = %s", got)
	}
}
