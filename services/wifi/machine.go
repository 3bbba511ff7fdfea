package wifi

import (
	"errors"
	"net"
	"time"
)

// State is where the connection to the network stands.
type State int

// States of the Machine.
const (
	// StateIdle: not started.
	StateIdle State = iota
	// StateSetup: finding the radio, checking it, setting the regulatory
	// domain and bringing the link up.
	StateSetup
	// StateConnecting: CONNECT sent, waiting for the kernel's answer.
	StateConnecting
	// StateConnected: associated (and, with WPA2, the 4-way handshake
	// done); the address is assigned.
	StateConnected
	// StateWaiting: the last attempt failed; the next is at Deadline.
	StateWaiting
	// StateFailed: a problem no retry fixes (the radio cannot do what the
	// overlay asks).
	StateFailed
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateSetup:
		return "setting up"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateWaiting:
		return "waiting to retry"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// EventKind says what happened.
type EventKind int

// Events the Machine takes.
const (
	// EvStart starts the machine.
	EvStart EventKind = iota
	// EvSetupDone: the setup action finished; Err says whether it worked.
	EvSetupDone
	// EvConnectSent: the CONNECT request was answered; a non-nil Err means
	// the kernel refused it (no CONNECT event follows).
	EvConnectSent
	// EvConnected: the kernel reports the connection made (BSSID set).
	EvConnected
	// EvConnectFailed: the kernel reports the attempt failed (Err says how).
	EvConnectFailed
	// EvDisconnected: the connection was lost (Err says why).
	EvDisconnected
	// EvAssignDone: the address assignment finished; Err says whether it
	// worked.
	EvAssignDone
	// EvTick: time passed; the machine acts when Deadline is reached.
	EvTick
)

// Event is one input of the Machine.
type Event struct {
	Kind  EventKind
	Err   error
	BSSID net.HardwareAddr
}

// Action is something the Machine asks its driver to do.
type Action int

// Actions of the Machine, each answered by an event: ActSetup by
// EvSetupDone, ActConnect by EvConnectSent (then EvConnected or
// EvConnectFailed), ActAssign by EvAssignDone; ActDisconnect and
// ActUnassign are answered by nothing.
const (
	ActSetup Action = iota
	ActConnect
	ActDisconnect
	ActAssign
	ActUnassign
)

func (a Action) String() string {
	return [...]string{"setup", "connect", "disconnect", "assign", "unassign"}[a]
}

// Permanent marks err as one that retrying cannot fix: the Machine stops
// in StateFailed on it.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err, or an error it wraps, is Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// Timing of the Machine; zero fields take these defaults.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = time.Minute
	// assignRetry is how soon a failed address assignment is retried.
	assignRetry = 5 * time.Second
)

// Machine is the connection's state machine: a pure step function from
// (state, event, now) to (state, actions), with no clock or socket of its
// own. Its driver runs the actions, feeds their results and the kernel's
// notifications back as events, and sends EvTick at Deadline.
type Machine struct {
	// ConnectTimeout bounds one attempt (scan, authentication,
	// association and the 4-way handshake).
	ConnectTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between failed attempts,
	// which doubles from one to the next.
	BackoffMin, BackoffMax time.Duration

	state    State
	deadline time.Time
	backoff  time.Duration
	// setupNext: the next attempt starts with setup (after a setup or
	// request failure: the radio may have gone or come back).
	setupNext bool
	lastErr   error
	bssid     net.HardwareAddr
	since     time.Time
	attempts  int
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Deadline returns when the driver must send EvTick next; the zero time
// means no timer.
func (m *Machine) Deadline() time.Time { return m.deadline }

// LastErr returns the last failure, or nil.
func (m *Machine) LastErr() error { return m.lastErr }

// BSSID returns the access point of the current connection.
func (m *Machine) BSSID() net.HardwareAddr { return m.bssid }

// Since returns when the machine entered its state.
func (m *Machine) Since() time.Time { return m.since }

// Attempts counts connection attempts since the last success.
func (m *Machine) Attempts() int { return m.attempts }

func (m *Machine) set(s State, now time.Time) {
	if s != m.state {
		m.since = now
	}
	m.state = s
}

// Step applies ev at time now and returns the actions to run, in order.
func (m *Machine) Step(ev Event, now time.Time) []Action {
	switch m.state {
	case StateIdle:
		if ev.Kind == EvStart {
			return m.setup(now)
		}
	case StateSetup:
		if ev.Kind == EvSetupDone {
			if ev.Err != nil {
				return m.fail(ev.Err, true, now)
			}
			return m.connect(now)
		}
	case StateConnecting:
		return m.stepConnecting(ev, now)
	case StateConnected:
		return m.stepConnected(ev, now)
	case StateWaiting:
		if ev.Kind == EvTick && !now.Before(m.deadline) {
			if m.setupNext {
				return m.setup(now)
			}
			return m.connect(now)
		}
	}
	return nil
}

func (m *Machine) stepConnecting(ev Event, now time.Time) []Action {
	switch ev.Kind {
	case EvConnectSent:
		if ev.Err != nil {
			return m.fail(ev.Err, true, now)
		}
	case EvConnected:
		m.set(StateConnected, now)
		m.deadline = time.Time{}
		m.backoff = 0
		m.attempts = 0
		m.lastErr = nil
		m.bssid = ev.BSSID
		return []Action{ActAssign}
	case EvConnectFailed, EvDisconnected:
		return m.fail(ev.Err, false, now)
	case EvTick:
		if !now.Before(m.deadline) {
			acts := m.fail(errors.New("no answer from the radio within the connect timeout"), false, now)
			return append([]Action{ActDisconnect}, acts...)
		}
	}
	return nil
}

func (m *Machine) stepConnected(ev Event, now time.Time) []Action {
	switch ev.Kind {
	case EvDisconnected, EvConnectFailed:
		// Link loss: drop the address and reconnect at once; the backoff
		// starts again from its minimum if that fails.
		m.lastErr = ev.Err
		m.bssid = nil
		return append([]Action{ActUnassign}, m.connect(now)...)
	case EvAssignDone:
		if ev.Err != nil {
			m.lastErr = ev.Err
			m.deadline = now.Add(assignRetry)
		} else {
			m.deadline = time.Time{}
		}
	case EvConnected:
		// Roamed to another access point of the network.
		m.bssid = ev.BSSID
	case EvTick:
		if !m.deadline.IsZero() && !now.Before(m.deadline) {
			m.deadline = time.Time{}
			return []Action{ActAssign}
		}
	}
	return nil
}

func (m *Machine) setup(now time.Time) []Action {
	m.set(StateSetup, now)
	m.deadline = time.Time{}
	m.setupNext = false
	return []Action{ActSetup}
}

func (m *Machine) connect(now time.Time) []Action {
	m.set(StateConnecting, now)
	m.attempts++
	timeout := m.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	m.deadline = now.Add(timeout)
	return []Action{ActConnect}
}

// fail records err and waits before the next attempt, or stops for good
// when err is permanent. setupNext makes the next attempt start with
// setup.
func (m *Machine) fail(err error, setupNext bool, now time.Time) []Action {
	if err == nil {
		err = errors.New("failed without a reason")
	}
	m.lastErr = err
	m.bssid = nil
	if IsPermanent(err) {
		m.set(StateFailed, now)
		m.deadline = time.Time{}
		return nil
	}
	lo, hi := m.BackoffMin, m.BackoffMax
	if lo <= 0 {
		lo = DefaultBackoffMin
	}
	if hi <= 0 {
		hi = DefaultBackoffMax
	}
	switch {
	case m.backoff == 0:
		m.backoff = lo
	default:
		m.backoff = min(2*m.backoff, hi)
	}
	m.setupNext = m.setupNext || setupNext
	m.set(StateWaiting, now)
	m.deadline = now.Add(m.backoff)
	return nil
}
