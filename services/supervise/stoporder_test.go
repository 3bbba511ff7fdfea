package supervise

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopOrder checks that Stop ends services one at a time, the last
// added first: on a load balancer the VIP (added after the balancer) hands
// the address over while the balancer still serves.
func TestStopOrder(t *testing.T) {
	clock := newFakeClock()
	st := newFakeStarter(clock)
	s := New(Config{Starter: st, Clock: clock, Log: quietLog()})
	for _, name := range []string{"balancer", "vip"} {
		if err := s.Add(Spec{Name: name, Command: Command{Path: "/x", Args: []string{name}}}); err != nil {
			t.Fatal(err)
		}
	}
	ops := st.take()
	if !strings.Contains(ops, "start balancer pid 101") || !strings.Contains(ops, "start vip pid 102") {
		t.Fatalf("starts: %s", ops)
	}
	done := make(chan error, 1)
	go func() { done <- s.Stop(context.Background()) }()

	var log strings.Builder
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(log.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s", want, log.String())
			}
			log.WriteString(st.take() + "\n")
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("kill -15 102")
	if strings.Contains(log.String(), "101") {
		t.Fatalf("the balancer was stopped before the VIP ended:\n%s", log.String())
	}
	st.end(102, Exit{Code: -1, Signal: syscall.SIGTERM})
	waitFor("kill -15 101")
	st.end(101, Exit{Code: -1, Signal: syscall.SIGTERM})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
}
