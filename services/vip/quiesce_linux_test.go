package vip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
	"github.com/piimage/piimage/services"
)

// TestBlockNewInNetns checks the handover's hold on new connections in a
// namespace: while it is on, a SYN to the VIP is dropped (the dial times
// out) but an open connection keeps working; once lifted, dials succeed.
func TestBlockNewInNetns(t *testing.T) {
	n := netnstest.New(t, "vq")
	n.IP("addr", "add", "10.99.0.15/32", "dev", "lo")
	ln, err := n.Listen("tcp", "10.99.0.15:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 16)
				for {
					k, err := c.Read(buf)
					if err != nil {
						c.Close()
						return
					}
					c.Write(buf[:k])
				}
			}()
		}
	}()
	dial := func(timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return n.DialContext(ctx, "tcp", "10.99.0.15:8080")
	}
	open, err := dial(2 * time.Second)
	if err != nil {
		t.Fatalf("dial before the hold: %v", err)
	}
	defer open.Close()

	// The init sets this for the services it starts in a namespace it
	// checked; this test checked by making the namespace.
	t.Setenv(services.NetworkCheckedEnv, "1")
	s := &linuxSystem{}
	if err := n.Do(func() error { return s.BlockNew([]netip.Addr{netip.MustParseAddr("10.99.0.15")}) }); err != nil {
		t.Fatalf("BlockNew: %v", err)
	}
	if out, err := n.Command("nft", "list", "table", "ip", quiesceTable).CombinedOutput(); err == nil {
		t.Logf("the hold:\n%s", out)
	}
	if c, err := dial(300 * time.Millisecond); err == nil {
		c.Close()
		t.Error("a new connection got through the hold")
	} else if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a new connection during the hold failed with %v, want a timeout (a dropped SYN, not a reset)", err)
	}
	open.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := open.Write([]byte("ping")); err != nil {
		t.Fatalf("the open connection during the hold: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := open.Read(buf); err != nil || string(buf) != "ping" {
		t.Errorf("the open connection during the hold read %q, %v", buf, err)
	}
	if err := n.Do(s.UnblockNew); err != nil {
		t.Fatalf("UnblockNew: %v", err)
	}
	c, err := dial(2 * time.Second)
	if err != nil {
		t.Fatalf("dial after the hold: %v", err)
	}
	c.Close()
	if err := n.Do(s.UnblockNew); err != nil {
		t.Errorf("UnblockNew without a hold: %v", err)
	}
}

func TestBlockNewRefusesInitialNamespace(t *testing.T) {
	s := &linuxSystem{}
	if err := mayTouchFirewall(); err == nil {
		t.Skip("this test runs outside the initial network namespace or under PID 1")
	}
	if err := s.BlockNew([]netip.Addr{netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Fatal("BlockNew changed the firewall of the machine's initial namespace")
	}
}
