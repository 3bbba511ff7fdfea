package timesync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Clock is the clock the client reads and, when allowed, sets.
type Clock interface {
	Now() time.Time
	// Set steps the clock to t.
	Set(t time.Time) error
}

// Sample is the outcome of one good exchange with a server.
type Sample struct {
	Server string
	// Offset is how far the local clock is behind the server's: add it to
	// the local time to get the server's.
	Offset time.Duration
	// Delay is the round trip, without the server's own processing time.
	Delay   time.Duration
	Stratum int
}

// Exchange sends one SNTP request over conn (a connected UDP socket) and
// returns the sample of the first reply that passes CheckReply; replies
// that do not are skipped until conn's deadline. The request's transmit
// timestamp is a random nonce rather than the (untrusted) local time, so
// an off-path attacker cannot guess it.
func Exchange(conn net.Conn, clock Clock) (Sample, error) {
	var nb [8]byte
	rand.Read(nb[:])
	nonce := Timestamp(binary.BigEndian.Uint64(nb[:]))
	req := Packet{Version: 4, Mode: ModeClient, XmitTime: nonce}
	t1 := clock.Now()
	if _, err := conn.Write(req.Marshal()); err != nil {
		return Sample{}, fmt.Errorf("sending the SNTP request: %w", err)
	}
	buf := make([]byte, 512)
	var lastErr error
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if lastErr != nil {
				return Sample{}, fmt.Errorf("%w (after a bad reply: %v)", err, lastErr)
			}
			return Sample{}, fmt.Errorf("waiting for the SNTP reply: %w", err)
		}
		p, err := Parse(buf[:n])
		if err == nil {
			err = CheckReply(p, nonce)
		}
		var kiss *KissError
		if errors.As(err, &kiss) {
			return Sample{}, err
		}
		if err != nil {
			lastErr = err
			continue
		}
		return sampleOf(p, t1, clock.Now()), nil
	}
}

// sampleOf computes offset and delay from the four times of RFC 4330
// section 5: t1 sent, t2 received by the server, t3 sent by the server,
// t4 received.
func sampleOf(p Packet, t1, t4 time.Time) Sample {
	t2, t3 := p.RecvTime.Time(), p.XmitTime.Time()
	delay := t4.Sub(t1) - t3.Sub(t2)
	if delay < 0 {
		delay = 0
	}
	return Sample{
		Offset:  (t2.Sub(t1) + t3.Sub(t4)) / 2,
		Delay:   delay,
		Stratum: int(p.Stratum),
	}
}

// queryUDP resolves server (host:port), exchanges one request with it over
// UDP and returns the sample; timeout bounds the whole query.
func queryUDP(ctx context.Context, server string, clock Clock, timeout time.Duration) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return Sample{}, err
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if lerr != nil || len(addrs) == 0 {
			return Sample{}, fmt.Errorf("resolving %s: %v", host, lerr)
		}
		addr = addrs[0]
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp4", net.JoinHostPort(addr.String(), port))
	if err != nil {
		return Sample{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	s, err := Exchange(conn, clock)
	s.Server = server
	return s, err
}
