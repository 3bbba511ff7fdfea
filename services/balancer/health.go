package balancer

import (
	"fmt"
	"time"
)

// HealthState is a backend's health as HAProxy's checks see it: up or down,
// and how many checks in a row passed or failed. It is a pure state
// machine: every input carries its time, so tests drive it without sleeping.
type HealthState struct {
	Up        bool
	Passes    int // consecutive passed checks
	Fails     int // consecutive failed checks
	Errs      int // consecutive failed requests (passive detection)
	Since     time.Time
	Reason    string // why the state last changed
	LastCheck time.Time
	LastOK    bool
	LastMsg   string
	LastDur   time.Duration
	Checks    uint64
	Failed    uint64 // failed checks in total
	Downs     uint64 // transitions to down
}

// newHealthState returns the state of a backend that was just added: up,
// like HAProxy, so that a starting balancer sends traffic at once; a dead
// backend costs a retry until its checks take it down.
func newHealthState(now time.Time) HealthState {
	return HealthState{Up: true, Since: now, Reason: "added"}
}

// checkResult feeds one active check's outcome into h and reports whether
// the backend went up or down: down after fall failures in a row, up after
// rise passes in a row.
func (h *HealthState) checkResult(now time.Time, ok bool, msg string, dur time.Duration, fall, rise int) (changed bool) {
	h.Checks++
	h.LastCheck, h.LastOK, h.LastMsg, h.LastDur = now, ok, msg, dur
	if ok {
		h.Fails = 0
		h.Passes++
		if !h.Up && h.Passes >= rise {
			h.Up, h.Since, h.Errs = true, now, 0
			h.Reason = fmt.Sprintf("%d checks passed: %s", h.Passes, msg)
			return true
		}
		return false
	}
	h.Failed++
	h.Passes = 0
	h.Fails++
	if h.Up && h.Fails >= fall {
		h.Up, h.Since = false, now
		h.Downs++
		h.Reason = fmt.Sprintf("%d checks failed: %s", h.Fails, msg)
		return true
	}
	return false
}

// trafficResult feeds the outcome of one proxied request into h (passive
// detection) and reports whether the backend went down: after limit failed
// requests in a row, a backend is down until rise checks pass. limit <= 0
// turns this off.
func (h *HealthState) trafficResult(now time.Time, ok bool, msg string, limit int) (changed bool) {
	if limit <= 0 {
		return false
	}
	if ok {
		h.Errs = 0
		return false
	}
	h.Errs++
	if h.Up && h.Errs >= limit {
		h.Up, h.Since = false, now
		h.Passes = 0
		h.Downs++
		h.Reason = fmt.Sprintf("%d requests failed in a row: %s", h.Errs, msg)
		return true
	}
	return false
}

// String describes h like HAProxy's stats page: "UP", "DOWN", or a state
// on its way, such as "UP 1/3" (one of three failures needed to go down).
func (h *HealthState) String(fall, rise int) string {
	switch {
	case h.Up && h.Fails > 0:
		return fmt.Sprintf("UP %d/%d", h.Fails, fall)
	case h.Up:
		return "UP"
	case h.Passes > 0:
		return fmt.Sprintf("DOWN %d/%d", h.Passes, rise)
	default:
		return "DOWN"
	}
}
