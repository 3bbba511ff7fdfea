package timesync

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// SystemClock is the machine's real-time clock. Setting it needs
// CAP_SYS_TIME and changes the time of every process on the machine: only
// PID 1 does that (Syncer.SetClock).
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Set steps CLOCK_REALTIME to t.
func (SystemClock) Set(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("setting the clock to %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return nil
}
