package wifi

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var apMAC = net.HardwareAddr{2, 0, 0, 0, 1, 0}

// step is one event at an offset from t0, and what must follow.
type step struct {
	at    time.Duration
	ev    Event
	acts  []Action
	state State
	// wake is the deadline after the step, as an offset from t0; -1 means
	// none.
	wake time.Duration
}

func runSteps(t *testing.T, m *Machine, steps []step) {
	t.Helper()
	for i, s := range steps {
		acts := m.Step(s.ev, t0.Add(s.at))
		if !reflect.DeepEqual(acts, s.acts) {
			t.Errorf("step %d (event %d at %v): actions %v, want %v", i, s.ev.Kind, s.at, acts, s.acts)
		}
		if m.State() != s.state {
			t.Errorf("step %d: state %v, want %v (last error %v)", i, m.State(), s.state, m.LastErr())
		}
		wantWake := time.Time{}
		if s.wake >= 0 {
			wantWake = t0.Add(s.wake)
		}
		if !m.Deadline().Equal(wantWake) {
			t.Errorf("step %d: deadline %v, want %v", i, m.Deadline().Sub(t0), s.wake)
		}
	}
}

func TestMachineConnects(t *testing.T) {
	m := &Machine{}
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{100 * time.Millisecond, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 30*time.Second + 100*time.Millisecond},
		{200 * time.Millisecond, Event{Kind: EvConnectSent}, nil, StateConnecting, 30*time.Second + 100*time.Millisecond},
		{2 * time.Second, Event{Kind: EvConnected, BSSID: apMAC}, []Action{ActAssign}, StateConnected, -1},
		{2 * time.Second, Event{Kind: EvAssignDone}, nil, StateConnected, -1},
		// Ticks while connected do nothing.
		{time.Minute, Event{Kind: EvTick}, nil, StateConnected, -1},
	})
	if m.BSSID().String() != apMAC.String() || m.LastErr() != nil || m.Attempts() != 0 || !m.Since().Equal(t0.Add(2*time.Second)) {
		t.Errorf("connected: bssid %v, err %v, attempts %d, since %v", m.BSSID(), m.LastErr(), m.Attempts(), m.Since())
	}
}

// TestMachineBackoff: an absent network is retried with a doubling wait,
// capped, and a connection resets it.
func TestMachineBackoff(t *testing.T) {
	notFound := errors.New("connecting timed out: network not found")
	m := &Machine{BackoffMin: time.Second, BackoffMax: 4 * time.Second}
	s := time.Second
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{0, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 30 * s},
		{5 * s, Event{Kind: EvConnectFailed, Err: notFound}, nil, StateWaiting, 6 * s},
		// An early tick does nothing.
		{5500 * time.Millisecond, Event{Kind: EvTick}, nil, StateWaiting, 6 * s},
		{6 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 36 * s},
		{10 * s, Event{Kind: EvConnectFailed, Err: notFound}, nil, StateWaiting, 12 * s},
		{12 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 42 * s},
		{13 * s, Event{Kind: EvConnectFailed, Err: notFound}, nil, StateWaiting, 17 * s},
		{17 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 47 * s},
		{18 * s, Event{Kind: EvConnectFailed, Err: notFound}, nil, StateWaiting, 22 * s}, // capped at 4 s
		{22 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 52 * s},
		{23 * s, Event{Kind: EvConnected, BSSID: apMAC}, []Action{ActAssign}, StateConnected, -1},
	})
	if m.Attempts() != 0 || m.LastErr() != nil {
		t.Errorf("after connecting: attempts %d, err %v", m.Attempts(), m.LastErr())
	}
}

// TestMachineTimeout: no answer within the connect timeout aborts the
// attempt with a DISCONNECT and waits.
func TestMachineTimeout(t *testing.T) {
	m := &Machine{ConnectTimeout: 10 * time.Second}
	s := time.Second
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{0, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 10 * s},
		{0, Event{Kind: EvConnectSent}, nil, StateConnecting, 10 * s},
		{9 * s, Event{Kind: EvTick}, nil, StateConnecting, 10 * s},
		{10 * s, Event{Kind: EvTick}, []Action{ActDisconnect}, StateWaiting, 11 * s},
		{11 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 21 * s},
	})
	if !strings.Contains(fmt.Sprint(m.LastErr()), "no answer") {
		t.Errorf("last error %v", m.LastErr())
	}
}

// TestMachineLinkLoss: a disconnect drops the address and reconnects at
// once; failures then back off from the minimum.
func TestMachineLinkLoss(t *testing.T) {
	m := &Machine{}
	s := time.Second
	gone := errors.New("disconnected by the access point: reason 3 (leaving)")
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{0, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 30 * s},
		{1 * s, Event{Kind: EvConnected, BSSID: apMAC}, []Action{ActAssign}, StateConnected, -1},
		{1 * s, Event{Kind: EvAssignDone}, nil, StateConnected, -1},
		{100 * s, Event{Kind: EvDisconnected, Err: gone}, []Action{ActUnassign, ActConnect}, StateConnecting, 130 * s},
		{101 * s, Event{Kind: EvConnectFailed, Err: gone}, nil, StateWaiting, 102 * s},
		{102 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 132 * s},
		{103 * s, Event{Kind: EvConnected, BSSID: apMAC}, []Action{ActAssign}, StateConnected, -1},
	})
	if m.BSSID() == nil {
		t.Error("no BSSID after reconnecting")
	}
}

// TestMachineSetupRetry: setup failures (no wlan0 yet: firmware loading)
// retry setup; a refused CONNECT request goes back through setup too.
func TestMachineSetupRetry(t *testing.T) {
	m := &Machine{}
	s := time.Second
	noLink := errors.New("wlan0 does not exist")
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{0, Event{Kind: EvSetupDone, Err: noLink}, nil, StateWaiting, 1 * s},
		{1 * s, Event{Kind: EvTick}, []Action{ActSetup}, StateSetup, -1},
		{1 * s, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 31 * s},
		{1 * s, Event{Kind: EvConnectSent, Err: errors.New("sending CONNECT: operation already in progress")}, nil, StateWaiting, 3 * s},
		{3 * s, Event{Kind: EvTick}, []Action{ActSetup}, StateSetup, -1},
		{3 * s, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 33 * s},
		// A connect failure reported by the kernel retries CONNECT alone.
		{4 * s, Event{Kind: EvConnectFailed, Err: errors.New("refused")}, nil, StateWaiting, 8 * s},
		{8 * s, Event{Kind: EvTick}, []Action{ActConnect}, StateConnecting, 38 * s},
	})
}

// TestMachinePermanent: a radio without the offload stops the machine for
// good with the error.
func TestMachinePermanent(t *testing.T) {
	m := &Machine{}
	err := Permanent(fmt.Errorf("wlan0: %w", ErrOffloadUnsupported))
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{0, Event{Kind: EvSetupDone, Err: err}, nil, StateFailed, -1},
		{time.Hour, Event{Kind: EvTick}, nil, StateFailed, -1},
		{time.Hour, Event{Kind: EvConnected}, nil, StateFailed, -1},
	})
	if !errors.Is(m.LastErr(), ErrOffloadUnsupported) || !strings.Contains(m.LastErr().Error(), "WPA2-PSK offload not supported by this radio") {
		t.Errorf("last error %v", m.LastErr())
	}
}

// TestMachineAssignRetry: a failed address assignment is retried while
// connected.
func TestMachineAssignRetry(t *testing.T) {
	m := &Machine{}
	s := time.Second
	runSteps(t, m, []step{
		{0, Event{Kind: EvStart}, []Action{ActSetup}, StateSetup, -1},
		{0, Event{Kind: EvSetupDone}, []Action{ActConnect}, StateConnecting, 30 * s},
		{1 * s, Event{Kind: EvConnected, BSSID: apMAC}, []Action{ActAssign}, StateConnected, -1},
		{1 * s, Event{Kind: EvAssignDone, Err: errors.New("file exists")}, nil, StateConnected, 6 * s},
		{6 * s, Event{Kind: EvTick}, []Action{ActAssign}, StateConnected, -1},
		{6 * s, Event{Kind: EvAssignDone}, nil, StateConnected, -1},
	})
}

// TestMachineIgnores: events that do not belong to a state change nothing.
func TestMachineIgnores(t *testing.T) {
	for _, st := range []State{StateIdle, StateSetup, StateWaiting, StateFailed} {
		for _, k := range []EventKind{EvConnected, EvDisconnected, EvConnectFailed, EvAssignDone, EvConnectSent} {
			m := &Machine{state: st, deadline: t0.Add(time.Hour)}
			if acts := m.Step(Event{Kind: k, BSSID: apMAC}, t0); acts != nil || m.State() != st {
				t.Errorf("%v + event %d: %v, state %v", st, k, acts, m.State())
			}
		}
	}
}
