package timesync

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// serverReply is a stratum-2 server's reply, as a capture shows it.
var serverReply = []byte{
	0x24,             // LI 0, VN 4, mode 4 (server)
	0x02,             // stratum 2
	0x03,             // poll 2^3 s
	0xe9,             // precision 2^-23 s
	0, 0, 0x01, 0x00, // root delay 1/256 s
	0, 0, 0x02, 0x00, // root dispersion 2/256 s
	192, 168, 1, 1, // reference id: the upstream server's address
	0xee, 0xac, 0xfc, 0x50, 0, 0, 0, 0, // reference time 2026-11-22 05:29:52
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // originate: the client's nonce
	0xee, 0xac, 0xfc, 0x58, 0x80, 0, 0, 0, // receive time 2026-11-22 05:30:00.5
	0xee, 0xac, 0xfc, 0x58, 0x80, 0x41, 0x89, 0x37, // transmit time 05:30:00.501
}

func TestParseGolden(t *testing.T) {
	p, err := Parse(serverReply)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{
		Leap: 0, Version: 4, Mode: ModeServer, Stratum: 2, Poll: 3, Precision: -23,
		RootDelay: 0x100, RootDispersion: 0x200, RefID: [4]byte{192, 168, 1, 1},
		RefTime: 0xeeacfc50_00000000, OrigTime: 0x1122334455667788,
		RecvTime: 0xeeacfc58_80000000, XmitTime: 0xeeacfc58_80418937,
	}
	if p != want {
		t.Errorf("Parse = %+v\nwant    %+v", p, want)
	}
	if got := p.Marshal(); !bytes.Equal(got, serverReply) {
		t.Errorf("Marshal = % x\nwant      % x", got, serverReply)
	}
	if got := p.RecvTime.Time(); !got.Equal(time.Date(2026, 11, 22, 5, 30, 0, 5e8, time.UTC)) {
		t.Errorf("receive time %v", got)
	}
	if got := p.XmitTime.Time(); !got.Equal(time.Date(2026, 11, 22, 5, 30, 0, 501e6, time.UTC)) {
		t.Errorf("transmit time %v", got)
	}
	// Trailing authenticator bytes are ignored; short packets are refused.
	if _, err := Parse(append(append([]byte{}, serverReply...), 1, 2, 3, 4)); err != nil {
		t.Error(err)
	}
	if _, err := Parse(serverReply[:47]); !errors.Is(err, ErrShort) {
		t.Errorf("short packet: %v", err)
	}
}

func TestRequestGolden(t *testing.T) {
	req := Packet{Version: 4, Mode: ModeClient, XmitTime: 0x0102030405060708}
	want := make([]byte, 48)
	want[0] = 0x23 // LI 0, VN 4, mode 3
	copy(want[40:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if got := req.Marshal(); !bytes.Equal(got, want) {
		t.Errorf("request = % x\nwant      % x", got, want)
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		t  time.Time
		ts Timestamp
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 0x83aa7e80_00000000},
		{time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC), 0xeeacfc58_00000000},
		{time.Date(2026, 11, 22, 5, 30, 0, 250e6, time.UTC), 0xeeacfc58_40000000},
		// Era 1 starts when the seconds wrap (RFC 4330 section 3).
		{time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), 0},
		{time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), 0x0754fd00_00000000},
	}
	for _, tt := range tests {
		if got := TimestampOf(tt.t); got != tt.ts {
			t.Errorf("TimestampOf(%v) = %#x, want %#x", tt.t, uint64(got), uint64(tt.ts))
		}
		if got := tt.ts.Time(); !got.Equal(tt.t) {
			t.Errorf("Timestamp(%#x).Time() = %v, want %v", uint64(tt.ts), got, tt.t)
		}
	}
}

func TestCheckReply(t *testing.T) {
	good, _ := Parse(serverReply)
	const sent = Timestamp(0x1122334455667788)
	tests := []struct {
		name   string
		change func(p *Packet)
		want   string
	}{
		{"good", func(p *Packet) {}, ""},
		{"version 3", func(p *Packet) { p.Version = 3 }, ""},
		{"client mode", func(p *Packet) { p.Mode = ModeClient }, "mode 3"},
		{"broadcast", func(p *Packet) { p.Mode = ModeBroadcast }, "mode 5"},
		{"version 2", func(p *Packet) { p.Version = 2 }, "version 2"},
		{"other request", func(p *Packet) { p.OrigTime++ }, "another request"},
		{"kiss", func(p *Packet) { p.Stratum = 0; p.RefID = [4]byte{'R', 'A', 'T', 'E'} }, "kiss-o'-death RATE"},
		{"alarm", func(p *Packet) { p.Leap = LeapAlarm }, "not synchronized"},
		{"stratum 16", func(p *Packet) { p.Stratum = 16 }, "stratum 16"},
		{"no transmit", func(p *Packet) { p.XmitTime = 0 }, "without receive or transmit"},
		{"far root", func(p *Packet) { p.RootDispersion = 16 << 16 }, "root distance"},
	}
	for _, tt := range tests {
		p := good
		tt.change(&p)
		err := CheckReply(p, sent)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want))):
			t.Errorf("%s: %v, want ...%s...", tt.name, err, tt.want)
		}
	}
}

// FuzzParse: Parse never panics, and what it parses re-encodes to the
// same 48 bytes; timestamps survive Time and TimestampOf.
func FuzzParse(f *testing.F) {
	f.Add(serverReply)
	f.Add((&Packet{Version: 4, Mode: ModeClient}).Marshal())
	f.Add([]byte{0x24})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if len(b) >= PacketLen {
				t.Fatalf("Parse refused %d bytes: %v", len(b), err)
			}
			return
		}
		if got := p.Marshal(); !bytes.Equal(got, b[:PacketLen]) {
			t.Fatalf("round trip\n% x\n% x", got, b[:PacketLen])
		}
		_ = CheckReply(p, p.OrigTime)
		for _, ts := range []Timestamp{p.RecvTime, p.XmitTime} {
			back := TimestampOf(ts.Time())
			// time.Time has nanoseconds; a fraction unit is 0.23 ns.
			if d := int64(back - ts); d < -5 || d > 5 {
				t.Fatalf("timestamp %#x -> %v -> %#x", uint64(ts), ts.Time(), uint64(back))
			}
		}
	})
}
