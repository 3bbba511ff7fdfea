// Package timesync is a small SNTP client (RFC 4330) that sets the node's
// clock from NTP servers. A Raspberry Pi has no battery-backed clock and
// boots in 1970; until one server has answered, the time is not trusted,
// and the status page says so.
//
// The package has three layers: a codec with no sockets (Packet, Parse,
// Timestamp), one request-reply exchange over a net.Conn (Exchange) that
// checks the reply as RFC 4330 section 5 asks, and a Syncer that queries
// the servers in rounds with backoff and steps the clock through an
// injected Clock (the system clock only when allowed: as PID 1).
package timesync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// PacketLen is the length of an NTP header without extension fields or
// authenticator.
const PacketLen = 48

// Modes of the NTP header (RFC 4330 section 4).
const (
	ModeClient    = 3
	ModeServer    = 4
	ModeBroadcast = 5
)

// Leap indicator values; LeapAlarm means the server's clock is not
// synchronized.
const (
	LeapNone  = 0
	LeapAlarm = 3
)

// Timestamp is an NTP timestamp: seconds since 1900-01-01 in the high 32
// bits and the fraction of a second in the low 32 bits.
type Timestamp uint64

// ntpEpoch is era 0's origin; RFC 4330 section 3 places timestamps whose
// most significant bit is clear in era 1, from 2036-02-07 06:28:16 UTC.
var (
	ntpEpoch  = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	era1Start = ntpEpoch.Add(time.Duration(1<<32) * time.Second)
)

// TimestampOf returns t as an NTP timestamp (valid 1968..2104).
func TimestampOf(t time.Time) Timestamp {
	base := ntpEpoch
	if !t.Before(era1Start) {
		base = era1Start
	}
	d := t.Sub(base)
	sec := uint64(d / time.Second)
	frac := (uint64(d%time.Second) << 32) / uint64(time.Second)
	return Timestamp(sec<<32 | frac)
}

// Time returns the time ts stands for, reading a clear top bit as era 1
// (2036..2104) as RFC 4330 section 3 says.
func (ts Timestamp) Time() time.Time {
	sec := uint64(ts) >> 32
	frac := uint64(ts) & 0xffffffff
	base := ntpEpoch
	if sec&0x80000000 == 0 {
		base = era1Start
	}
	nsec := (frac*uint64(time.Second) + 1<<31) >> 32
	return base.Add(time.Duration(sec)*time.Second + time.Duration(nsec)).UTC()
}

// Packet is an NTP header, RFC 4330 section 4.
type Packet struct {
	Leap, Version, Mode uint8
	Stratum             uint8
	Poll, Precision     int8
	// RootDelay and RootDispersion are 16.16 fixed-point seconds.
	RootDelay, RootDispersion uint32
	// RefID names the server's reference; in a kiss-o'-death packet
	// (stratum 0) it holds four ASCII letters such as "RATE".
	RefID                                 [4]byte
	RefTime, OrigTime, RecvTime, XmitTime Timestamp
}

// ErrShort is returned for a packet shorter than an NTP header.
var ErrShort = errors.New("NTP packet shorter than 48 bytes")

// Parse decodes an NTP header. Extension fields and an authenticator
// after the 48 bytes are ignored.
func Parse(b []byte) (Packet, error) {
	if len(b) < PacketLen {
		return Packet{}, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	p := Packet{
		Leap:           b[0] >> 6,
		Version:        b[0] >> 3 & 7,
		Mode:           b[0] & 7,
		Stratum:        b[1],
		Poll:           int8(b[2]),
		Precision:      int8(b[3]),
		RootDelay:      binary.BigEndian.Uint32(b[4:]),
		RootDispersion: binary.BigEndian.Uint32(b[8:]),
		RefTime:        Timestamp(binary.BigEndian.Uint64(b[16:])),
		OrigTime:       Timestamp(binary.BigEndian.Uint64(b[24:])),
		RecvTime:       Timestamp(binary.BigEndian.Uint64(b[32:])),
		XmitTime:       Timestamp(binary.BigEndian.Uint64(b[40:])),
	}
	copy(p.RefID[:], b[12:16])
	return p, nil
}

// Marshal encodes the header in 48 bytes.
func (p *Packet) Marshal() []byte {
	b := make([]byte, PacketLen)
	b[0] = p.Leap<<6 | (p.Version&7)<<3 | p.Mode&7
	b[1] = p.Stratum
	b[2] = byte(p.Poll)
	b[3] = byte(p.Precision)
	binary.BigEndian.PutUint32(b[4:], p.RootDelay)
	binary.BigEndian.PutUint32(b[8:], p.RootDispersion)
	copy(b[12:16], p.RefID[:])
	binary.BigEndian.PutUint64(b[16:], uint64(p.RefTime))
	binary.BigEndian.PutUint64(b[24:], uint64(p.OrigTime))
	binary.BigEndian.PutUint64(b[32:], uint64(p.RecvTime))
	binary.BigEndian.PutUint64(b[40:], uint64(p.XmitTime))
	return b
}

// shortDuration converts a 16.16 fixed-point number of seconds.
func shortDuration(v uint32) time.Duration {
	return time.Duration((uint64(v) * uint64(time.Second)) >> 16)
}

// KissError is a kiss-o'-death reply (stratum 0): the server asks the
// client to go away (DENY, RSTR) or to slow down (RATE).
type KissError struct{ Code string }

func (e *KissError) Error() string { return "the server sent kiss-o'-death " + e.Code }

// CheckReply checks a server's reply to the request whose transmit
// timestamp was sent, as RFC 4330 section 5 lists: a server (mode 4)
// reply to exactly this request, from a synchronized server of stratum 1
// to 15, with non-zero receive and transmit times and a root distance
// under 16 s.
func CheckReply(p Packet, sent Timestamp) error {
	switch {
	case p.Mode != ModeServer:
		return fmt.Errorf("reply of mode %d, not a server's (4)", p.Mode)
	case p.Version < 3 || p.Version > 4:
		return fmt.Errorf("reply of NTP version %d", p.Version)
	case p.OrigTime != sent:
		return errors.New("reply to another request (originate timestamp differs)")
	case p.Stratum == 0:
		return &KissError{Code: kissCode(p.RefID)}
	case p.Leap == LeapAlarm:
		return errors.New("the server's clock is not synchronized (leap indicator 3)")
	case p.Stratum > 15:
		return fmt.Errorf("the server is unsynchronized (stratum %d)", p.Stratum)
	case p.XmitTime == 0 || p.RecvTime == 0:
		return errors.New("reply without receive or transmit time")
	case shortDuration(p.RootDelay)/2+shortDuration(p.RootDispersion) >= 16*time.Second:
		return errors.New("the server's root distance is 16 s or more")
	}
	return nil
}

func kissCode(id [4]byte) string {
	for _, c := range id {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", id[:])
		}
	}
	return string(id[:])
}
