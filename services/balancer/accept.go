package balancer

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// acceptLoop accepts connections from ln and hands each to handle until ln
// is closed. A closed listener while closing is set ends it with nil;
// temporary errors and running out of file descriptors back off (5 ms
// doubling to 1 s) instead of spinning or giving up.
func acceptLoop(ln net.Listener, closing *atomic.Bool, handle func(net.Conn)) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accepting: %w", err)
		}
		delay = 0
		handle(c)
	}
}
