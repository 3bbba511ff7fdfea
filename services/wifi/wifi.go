// Package wifi joins a node's wlan0 to a Wi-Fi network, open or WPA2-PSK,
// in pure Go: nl80211 over generic netlink, no wpa_supplicant.
//
// The Raspberry Pi's Broadcom radio (brcmfmac) does the WPA2 4-way
// handshake in its firmware: the host sends NL80211_CMD_CONNECT with the
// pairwise master key (PMK, derived from passphrase and SSID) and waits
// for the kernel's CONNECT notification. A radio without that offload
// (NL80211_EXT_FEATURE_4WAY_HANDSHAKE_STA_PSK) cannot join a WPA2 network
// this way; Setup says so and the Manager stops trying. Open networks work
// on any radio whose driver implements CONNECT (every mac80211 driver,
// through cfg80211's SME).
//
// The package has three layers: a codec of the nl80211 messages that opens
// no sockets (nlmsg.go, nl80211.go), a state machine stepped by events and
// an injected clock (machine.go), and the Manager, which runs the machine
// against a Radio (radio_linux.go: the kernel over netlink sockets) and
// calls the caller's Assign and Unassign hooks so that wlan0's address
// exists only while the node is associated.
package wifi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrOffloadUnsupported is Setup's error (wrapped, and Permanent) for a
// WPA2-PSK network on a radio that cannot do the 4-way handshake itself.
var ErrOffloadUnsupported = errors.New("WPA2-PSK offload not supported by this radio")

// Radio is the Wi-Fi device a Manager drives. NewRadio returns the Linux
// one; tests use fakes.
type Radio interface {
	// Setup finds the interface and its radio, checks that the radio can
	// join the network (WPA2-PSK needs the 4-way handshake offload: else
	// a Permanent error wrapping ErrOffloadUnsupported), sets the regulatory
	// domain, brings the link up and drops any connection left over.
	Setup(ctx context.Context, p SetupParams) error
	// Connect asks the radio to join the network. It returns once the
	// request is accepted; the outcome arrives on Events.
	Connect(ctx context.Context, p ConnectParams) error
	// Disconnect leaves the network (best effort).
	Disconnect(ctx context.Context) error
	// Signal returns the current access point's signal strength in dBm.
	Signal(ctx context.Context) (int, error)
	// Events delivers the kernel's CONNECT and DISCONNECT notifications
	// for the interface as EvConnected, EvConnectFailed and
	// EvDisconnected.
	Events() <-chan Event
	Close() error
}

// SetupParams is what Radio.Setup checks and sets.
type SetupParams struct {
	// Secured: the network is WPA2-PSK (the radio must offload the
	// handshake).
	Secured bool
	// Country is the ISO 3166-1 alpha-2 regulatory domain, or "00".
	Country string
}

// Clock is the Manager's time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// DefaultSignalEvery is how often a connected Manager reads the signal.
const DefaultSignalEvery = 10 * time.Second

// Config configures a Manager. Nil and zero fields mean the documented
// defaults.
type Config struct {
	// Interface is the network interface, e.g. "wlan0". Required.
	Interface string
	// SSID is the network's name. Required.
	SSID string
	// PMK is the network's pairwise master key (see DerivePMK and PMK);
	// nil for an open network. The Manager never logs or reports it.
	PMK []byte
	// Country is the regulatory domain; "" means "00" (world).
	Country string
	// Radio is the device. Required (NewRadio(Interface, log) on Linux).
	Radio Radio
	// Assign configures the interface's address and route once the node
	// is associated; Unassign removes them when the connection is lost.
	// Nil means nothing to do.
	Assign, Unassign func(ctx context.Context) error
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// Log receives state changes; nil means none.
	Log *slog.Logger
	// OnChange, when set, is called with the new status after every
	// change of state (from the Manager's goroutine; it must not block).
	OnChange func(Status)
	// ConnectTimeout, BackoffMin and BackoffMax time the attempts (see
	// Machine); SignalEvery is how often the signal is read while
	// connected.
	ConnectTimeout, BackoffMin, BackoffMax, SignalEvery time.Duration
}

// Status is what the node reports about its Wi-Fi (GET /status). It never
// holds the PSK or PMK.
type Status struct {
	Interface string `json:"interface"`
	SSID      string `json:"ssid"`
	// Security is "wpa2-psk" or "open".
	Security string `json:"security"`
	// State is the machine's state, e.g. "connected" or "waiting to
	// retry".
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// BSSID is the access point's address while connected.
	BSSID string `json:"bssid,omitempty"`
	// SignalDBM is the last signal reading while connected.
	SignalDBM *int `json:"signal_dbm,omitempty"`
	// Since is when the state began.
	Since time.Time `json:"since"`
	// Attempts counts connection attempts since the last success.
	Attempts int `json:"attempts"`
	// LastError is the last failure, "" when none since connecting.
	LastError string `json:"last_error,omitempty"`
	// NextAttempt is when the next attempt starts while waiting.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}

// Manager keeps one interface connected. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg   Config
	clock Clock
	log   *slog.Logger

	mu     sync.Mutex
	status Status
}

// New returns a Manager for cfg; Run starts it.
func New(cfg Config) *Manager {
	m := &Manager{cfg: cfg, clock: cfg.Clock, log: cfg.Log}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.status = Status{Interface: cfg.Interface, SSID: cfg.SSID, Security: "open", State: StateIdle.String()}
	if cfg.PMK != nil {
		m.status.Security = "wpa2-psk"
	}
	return m
}

// Status returns the current status.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	if s.SignalDBM != nil {
		v := *s.SignalDBM
		s.SignalDBM = &v
	}
	return s
}

// Run keeps the interface connected until ctx is done, then removes the
// address, disconnects and closes the radio. It returns nil then, or an
// error right away when the configuration is incomplete. A permanent
// failure leaves it waiting for ctx with the error in Status.
func (m *Manager) Run(ctx context.Context) error {
	if m.cfg.Radio == nil || m.cfg.Interface == "" || m.cfg.SSID == "" {
		return errors.New("wifi: Config needs Interface, SSID and Radio")
	}
	if m.cfg.PMK != nil && len(m.cfg.PMK) != PMKLen {
		return fmt.Errorf("wifi: the PMK has %d bytes, not %d", len(m.cfg.PMK), PMKLen)
	}
	mach := &Machine{ConnectTimeout: m.cfg.ConnectTimeout, BackoffMin: m.cfg.BackoffMin, BackoffMax: m.cfg.BackoffMax}
	signalEvery := m.cfg.SignalEvery
	if signalEvery <= 0 {
		signalEvery = DefaultSignalEvery
	}
	var nextSignal time.Time
	m.feed(ctx, mach, Event{Kind: EvStart})
	for {
		wake := mach.Deadline()
		if mach.State() == StateConnected {
			if nextSignal.IsZero() {
				m.readSignal(ctx)
				nextSignal = m.clock.Now().Add(signalEvery)
			}
			if wake.IsZero() || nextSignal.Before(wake) {
				wake = nextSignal
			}
		} else {
			nextSignal = time.Time{}
		}
		var timer <-chan time.Time
		if !wake.IsZero() {
			timer = m.clock.After(max(wake.Sub(m.clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			m.shutdown(mach)
			return nil
		case ev := <-m.cfg.Radio.Events():
			m.feed(ctx, mach, ev)
		case <-timer:
			now := m.clock.Now()
			if !nextSignal.IsZero() && !now.Before(nextSignal) {
				m.readSignal(ctx)
				nextSignal = now.Add(signalEvery)
			}
			m.feed(ctx, mach, Event{Kind: EvTick})
		}
	}
}

// feed steps the machine with ev and runs the actions, feeding their
// results back, until nothing is left to do.
func (m *Manager) feed(ctx context.Context, mach *Machine, ev Event) {
	queue := []Event{ev}
	for len(queue) > 0 {
		ev, queue = queue[0], queue[1:]
		before := mach.State()
		acts := mach.Step(ev, m.clock.Now())
		m.publish(mach, before)
		for _, a := range acts {
			if next, ok := m.do(ctx, a); ok {
				queue = append(queue, next)
			}
		}
	}
}

// do runs one action and returns the event that answers it, if any.
func (m *Manager) do(ctx context.Context, a Action) (Event, bool) {
	r := m.cfg.Radio
	switch a {
	case ActSetup:
		country := m.cfg.Country
		if country == "" {
			country = "00"
		}
		err := r.Setup(ctx, SetupParams{Secured: m.cfg.PMK != nil, Country: country})
		return Event{Kind: EvSetupDone, Err: err}, true
	case ActConnect:
		err := r.Connect(ctx, ConnectParams{SSID: []byte(m.cfg.SSID), PMK: m.cfg.PMK})
		return Event{Kind: EvConnectSent, Err: err}, true
	case ActDisconnect:
		if err := r.Disconnect(ctx); err != nil {
			m.log.Debug("wifi: disconnecting", "interface", m.cfg.Interface, "err", err)
		}
	case ActAssign:
		var err error
		if m.cfg.Assign != nil {
			err = m.cfg.Assign(ctx)
		}
		if err != nil {
			m.log.Warn("wifi: assigning the address", "interface", m.cfg.Interface, "err", err)
			err = fmt.Errorf("assigning the address: %w", err)
		}
		return Event{Kind: EvAssignDone, Err: err}, true
	case ActUnassign:
		m.setSignal(nil)
		if m.cfg.Unassign != nil {
			if err := m.cfg.Unassign(ctx); err != nil {
				m.log.Warn("wifi: removing the address", "interface", m.cfg.Interface, "err", err)
			}
		}
	}
	return Event{}, false
}

// publish copies the machine's state into the status and logs changes.
func (m *Manager) publish(mach *Machine, before State) {
	m.mu.Lock()
	s := &m.status
	s.State = mach.State().String()
	s.Connected = mach.State() == StateConnected
	s.Since = mach.Since()
	s.Attempts = mach.Attempts()
	s.BSSID = ""
	if b := mach.BSSID(); b != nil {
		s.BSSID = b.String()
	}
	s.LastError = ""
	if err := mach.LastErr(); err != nil {
		s.LastError = err.Error()
	}
	s.NextAttempt = nil
	if mach.State() == StateWaiting {
		t := mach.Deadline()
		s.NextAttempt = &t
	}
	if !s.Connected {
		s.SignalDBM = nil
	}
	snapshot := *s
	m.mu.Unlock()
	if after := mach.State(); after != before {
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(snapshot)
		}
		args := []any{"interface", m.cfg.Interface, "ssid", m.cfg.SSID, "state", after.String()}
		switch {
		case after == StateConnected:
			args = append(args, "bssid", mach.BSSID().String())
			m.log.Info("wifi: connected", args...)
		case after == StateFailed:
			m.log.Error("wifi: giving up", append(args, "err", mach.LastErr())...)
		case after == StateWaiting:
			m.log.Warn("wifi: attempt failed", append(args, "err", mach.LastErr(), "retry_at", mach.Deadline())...)
		default:
			m.log.Info("wifi: state", args...)
		}
	}
}

func (m *Manager) readSignal(ctx context.Context) {
	dbm, err := m.cfg.Radio.Signal(ctx)
	if err != nil {
		m.log.Debug("wifi: reading the signal", "interface", m.cfg.Interface, "err", err)
		return
	}
	m.setSignal(&dbm)
}

func (m *Manager) setSignal(dbm *int) {
	m.mu.Lock()
	m.status.SignalDBM = dbm
	m.mu.Unlock()
}

// shutdownTimeout bounds leaving the network when the Manager stops.
const shutdownTimeout = 3 * time.Second

func (m *Manager) shutdown(mach *Machine) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if mach.State() == StateConnected && m.cfg.Unassign != nil {
		if err := m.cfg.Unassign(ctx); err != nil {
			m.log.Warn("wifi: removing the address", "interface", m.cfg.Interface, "err", err)
		}
	}
	if mach.State() == StateConnected || mach.State() == StateConnecting {
		m.cfg.Radio.Disconnect(ctx)
	}
	m.cfg.Radio.Close()
	m.mu.Lock()
	m.status.State, m.status.Connected, m.status.SignalDBM, m.status.NextAttempt = "stopped", false, nil, nil
	m.mu.Unlock()
}
