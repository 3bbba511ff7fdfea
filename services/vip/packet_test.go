package vip

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	goldenSrc = netip.MustParseAddr("192.0.2.2")
	goldenUni = netip.MustParseAddr("192.0.2.3")
	vip1      = netip.MustParseAddr("192.0.2.100")
	vip2      = netip.MustParseAddr("192.0.2.101")
)

// The golden packets are laid out by hand from RFC 5798 section 5.1 and
// RFC 3768 section 5.1, as keepalived 2.2.7 sends them (no authentication,
// v2 with eight zero bytes of authentication data); the checksums were
// computed independently of this package.
var goldens = []struct {
	name     string
	src, dst netip.Addr
	pkt      Packet
	bytes    []byte
}{
	{
		name: "v3 multicast, keepalived advert_int 1, two addresses",
		src:  goldenSrc, dst: Group,
		pkt: Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip1, vip2}, Checksum: 0x4306},
		bytes: []byte{
			0x31,       // version 3, type 1 (advertisement)
			51,         // VRID
			100,        // priority
			2,          // count IPv4 addrs
			0x00, 0x64, // rsvd 0, max adver int 100 centiseconds
			0x43, 0x06, // checksum with the IPv4 pseudo-header
			192, 0, 2, 100,
			192, 0, 2, 101,
		},
	},
	{
		name: "v2 multicast, keepalived vrrp_version 2",
		src:  goldenSrc, dst: Group,
		pkt: Packet{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip1}, Checksum: 0xb865},
		bytes: []byte{
			0x21,       // version 2, type 1
			51, 100, 1, // VRID, priority, count
			0,          // auth type none
			1,          // adver int, seconds
			0xb8, 0x65, // checksum over the VRRP message only
			192, 0, 2, 100,
			0, 0, 0, 0, 0, 0, 0, 0, // authentication data
		},
	},
	{
		name: "v3 unicast, priority 0 (master stopping), 100ms",
		src:  goldenSrc, dst: goldenUni,
		pkt:   Packet{Version: 3, VRID: 7, Priority: 0, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip1}, Checksum: 0x8806},
		bytes: []byte{0x31, 7, 0, 1, 0x00, 10, 0x88, 0x06, 192, 0, 2, 100},
	},
}

func TestGoldenMarshal(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got := g.pkt.Marshal(g.src, g.dst)
			if !bytes.Equal(got, g.bytes) {
				t.Errorf("Marshal = % x\nwant      % x", got, g.bytes)
			}
		})
	}
}

func TestGoldenParse(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := ParseFrom(g.bytes, g.src, g.dst)
			if err != nil {
				t.Fatalf("ParseFrom: %v", err)
			}
			if got.Version != g.pkt.Version || got.VRID != g.pkt.VRID || got.Priority != g.pkt.Priority ||
				got.Interval != g.pkt.Interval || got.Checksum != g.pkt.Checksum || !slices.Equal(got.Addrs, g.pkt.Addrs) {
				t.Errorf("ParseFrom = %+v, want %+v", got, g.pkt)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	v3 := goldens[0].bytes
	v2 := goldens[1].bytes
	mod := func(b []byte, f func(b []byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{"empty", nil, goldenSrc, Group, ErrTruncated},
		{"header only", v3[:8], goldenSrc, Group, ErrTruncated},
		{"one address missing", v3[:12], goldenSrc, Group, ErrTruncated},
		{"trailing byte", append(bytes.Clone(v3), 0), goldenSrc, Group, ErrLength},
		{"v2 without auth data", v2[:12], goldenSrc, Group, ErrTruncated},
		{"version 1", mod(v3, func(b []byte) { b[0] = 0x11 }), goldenSrc, Group, ErrVersion},
		{"version 4", mod(v3, func(b []byte) { b[0] = 0x41 }), goldenSrc, Group, ErrVersion},
		{"type 2", mod(v3, func(b []byte) { b[0] = 0x32 }), goldenSrc, Group, ErrType},
		{"no address", []byte{0x31, 51, 100, 0, 0, 100, 0, 0}, goldenSrc, Group, ErrNoAddrs},
		{"v3 checksum", mod(v3, func(b []byte) { b[7] ^= 1 }), goldenSrc, Group, ErrChecksum},
		{"v3 wrong source for checksum", v3, goldenUni, Group, ErrChecksum},
		{"v3 wrong destination for checksum", v3, goldenSrc, goldenUni, ErrChecksum},
		{"v3 priority changed", mod(v3, func(b []byte) { b[2] = 200 }), goldenSrc, Group, ErrChecksum},
		{"v2 checksum", mod(v2, func(b []byte) { b[6] ^= 0x80 }), goldenSrc, Group, ErrChecksum},
		{"v2 simple text auth", mod(v2, func(b []byte) { b[4] = 1 }), goldenSrc, Group, ErrAuth},
		{"v2 AH auth", mod(v2, func(b []byte) { b[4] = 2 }), goldenSrc, Group, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseFrom(tt.b, tt.src, tt.dst)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseFrom = %+v, %v; want error %v", p, err, tt.want)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, v := range []int{2, 3} {
		iv := 10 * time.Millisecond
		if v == 2 {
			iv = 3 * time.Second
		}
		for _, prio := range []uint8{0, 1, 100, 254, 255} {
			p := &Packet{Version: v, VRID: 255, Priority: prio, Interval: iv, Addrs: []netip.Addr{vip2, vip1}}
			b := p.Marshal(goldenSrc, goldenUni)
			q, err := ParseFrom(b, goldenSrc, goldenUni)
			if err != nil {
				t.Fatalf("v%d prio %d: %v", v, prio, err)
			}
			if q.Priority != prio || q.Interval != iv || !slices.Equal(q.Addrs, p.Addrs) {
				t.Errorf("v%d prio %d: round trip gave %+v", v, prio, q)
			}
		}
	}
}

// FuzzParse checks that no input makes Parse panic and that whatever Parse
// accepts survives Marshal and Parse again unchanged.
func FuzzParse(f *testing.F) {
	for _, g := range goldens {
		f.Add(g.bytes)
	}
	f.Add([]byte{0x31, 1, 1, 255})
	f.Add([]byte{0x21, 1, 1, 1, 1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseFrom(b, goldenSrc, Group)
		if err != nil {
			if _, err2 := Parse(b); err2 == nil && p != nil {
				t.Fatal("ParseFrom failed with a packet")
			}
			return
		}
		if p.Interval <= 0 {
			return // interval 0: valid on the wire, refused later by the router
		}
		b2 := p.Marshal(goldenSrc, Group)
		if p.Version == 3 && !bytes.Equal(b2[:4], b[:4]) {
			t.Fatalf("re-marshal changed header: % x -> % x", b, b2)
		}
		q, err := ParseFrom(b2, goldenSrc, Group)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if q.Priority != p.Priority || q.VRID != p.VRID || q.Interval != p.Interval || !slices.Equal(q.Addrs, p.Addrs) {
			t.Fatalf("round trip %+v -> %+v", p, q)
		}
	})
}
