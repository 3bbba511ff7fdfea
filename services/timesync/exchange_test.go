package timesync

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock returns its time, advancing by step on every read.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
	sets []time.Time
	err  error
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func (c *fakeClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.sets = append(c.sets, t)
	c.now = t
	return nil
}

// fakeServer answers SNTP requests on loopback with what reply returns
// for each request (nil replies are not sent).
func fakeServer(t *testing.T, reply func(req Packet) [][]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := Parse(buf[:n])
			if err != nil {
				continue
			}
			for _, b := range reply(req) {
				pc.WriteTo(b, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// serverTime is the fake servers' clock: the client's fake clock plus
// offset.
func answer(req Packet, recv, xmit time.Time) Packet {
	return Packet{
		Version: 4, Mode: ModeServer, Stratum: 1, RefID: [4]byte{'G', 'P', 'S', 0},
		OrigTime: req.XmitTime, RecvTime: TimestampOf(recv), XmitTime: TimestampOf(xmit),
	}
}

func TestExchange(t *testing.T) {
	local := time.Date(1970, 1, 1, 0, 0, 10, 0, time.UTC)
	server := time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC)
	tests := []struct {
		name    string
		reply   func(req Packet) [][]byte
		wantErr string
	}{
		{"good", func(req Packet) [][]byte {
			p := answer(req, server, server.Add(time.Millisecond))
			return [][]byte{p.Marshal()}
		}, ""},
		{"a forged reply first is skipped", func(req Packet) [][]byte {
			forged := answer(req, server.Add(time.Hour), server.Add(time.Hour))
			forged.OrigTime++
			good := answer(req, server, server.Add(time.Millisecond))
			return [][]byte{forged.Marshal(), []byte("short"), good.Marshal()}
		}, ""},
		{"kiss", func(req Packet) [][]byte {
			p := answer(req, server, server)
			p.Stratum, p.RefID = 0, [4]byte{'D', 'E', 'N', 'Y'}
			return [][]byte{p.Marshal()}
		}, "kiss-o'-death DENY"},
		{"silence", func(req Packet) [][]byte { return nil }, "timeout"},
		{"only bad replies", func(req Packet) [][]byte {
			p := answer(req, server, server)
			p.Mode = ModeBroadcast
			return [][]byte{p.Marshal()}
		}, "mode 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.reply)
			// The client's clock reads local, then local+10ms after the
			// round trip.
			clock := &fakeClock{now: local, step: 10 * time.Millisecond}
			s, err := queryUDP(context.Background(), addr, clock, 300*time.Millisecond)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ...%s...", err, tt.wantErr)
				}
				var k *KissError
				if tt.name == "kiss" && !errors.As(err, &k) {
					t.Errorf("kiss error %T is not a *KissError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// t1 = local, t2 = server, t3 = server+1ms, t4 = local+10ms:
			// delay 9ms, offset (server-local) - 4.5ms.
			wantOffset := server.Sub(local) - 4500*time.Microsecond
			if d := s.Offset - wantOffset; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("offset %v, want %v", s.Offset, wantOffset)
			}
			if d := s.Delay - 9*time.Millisecond; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("delay %v, want 9ms", s.Delay)
			}
			if s.Stratum != 1 || s.Server != addr {
				t.Errorf("sample %+v", s)
			}
		})
	}
}

func TestRequestNoncesDiffer(t *testing.T) {
	seen := make(chan Timestamp, 2)
	addr := fakeServer(t, func(req Packet) [][]byte {
		seen <- req.XmitTime
		if req.Mode != ModeClient || req.Version != 4 {
			t.Errorf("request %+v", req)
		}
		return nil
	})
	for i := 0; i < 2; i++ {
		queryUDP(context.Background(), addr, &fakeClock{now: time.Unix(0, 0)}, 100*time.Millisecond)
	}
	if a, b := <-seen, <-seen; a == b || a == 0 {
		t.Errorf("transmit timestamps %#x and %#x: want random nonces", uint64(a), uint64(b))
	}
}
