//go:build !linux

package timesync

import (
	"errors"
	"time"
)

// SystemClock is the machine's real-time clock; it can be set on Linux
// only.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Set fails off Linux.
func (SystemClock) Set(t time.Time) error { return errors.New("setting the clock needs Linux") }
