package vip

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a virtual router's VRRP state (RFC 5798 section 6.4), plus Fault,
// keepalived's state for a router whose tracking forces it out of the
// election.
type State int

// The states of a virtual router.
const (
	Initialize State = iota
	Backup
	Master
	Fault
)

var stateNames = [...]string{"INIT", "BACKUP", "MASTER", "FAULT"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Timer names one of a router's timers.
type Timer int

// A router's timers. The driver keeps one deadline per timer, set by
// ArmTimer actions, and feeds TimerFired events back.
const (
	// TimerAdver is RFC 5798's Adver_Timer (master).
	TimerAdver Timer = iota
	// TimerMasterDown is RFC 5798's Master_Down_Timer (backup).
	TimerMasterDown
	// TimerGARP spaces the repeated gratuitous ARPs of a new master.
	TimerGARP
	// TimerRelease ends a planned release of the VIP (stop or handover).
	TimerRelease
	numTimers
)

var timerNames = [...]string{"adver", "master-down", "garp", "release"}

func (t Timer) String() string {
	if t < 0 || t >= numTimers {
		return fmt.Sprintf("Timer(%d)", int(t))
	}
	return timerNames[t]
}

// releaseGrace is how long a releasing master keeps the VIP after its
// successor's first advertisement, so that the successor's gratuitous ARP
// reaches the clients before the old master stops answering.
const releaseGrace = 100 * time.Millisecond

// Config is one virtual router's settings, as the state machine needs them.
type Config struct {
	// Interface carries the router (the driver's business).
	Interface string
	// VRID is the virtual router id, 1..255.
	VRID uint8
	// Version is 2 or 3.
	Version int
	// Priority is the configured priority, 1..255.
	Priority int
	// Interval is Advertisement_Interval.
	Interval time.Duration
	// Preempt is Preempt_Mode.
	Preempt bool
	// PreemptDelay holds off preemption after start and after a fault.
	PreemptDelay time.Duration
	// Addrs are the virtual addresses.
	Addrs []netip.Prefix
	// Primary is this router's primary IPv4 address, the source of its
	// advertisements and the tie-breaker of equal priorities.
	Primary netip.Addr
	// Owner is set when the addresses are the interface's own (priority
	// 255): they are never added or removed.
	Owner bool
	// Peers are the unicast peers; empty means multicast.
	Peers []netip.Addr
	// VirtualMAC puts the addresses on a macvlan device with the VRRP
	// virtual MAC (the driver's business).
	VirtualMAC bool
	// GARPCount and GARPInterval shape the gratuitous ARPs of a new master.
	GARPCount    int
	GARPInterval time.Duration
	// GARPRefresh, when not zero, sends one more gratuitous ARP this long
	// after the last of a burst: Linux hosts ignore an ARP that would
	// change an entry updated less than a second before (neighbour
	// locktime), so a burst that follows another router's ARPs closely
	// is lost on them (keepalived repeats its burst after
	// garp_master_delay for the same reason).
	GARPRefresh time.Duration
}

// DefaultGARPRefresh is the Config.GARPRefresh the service uses: past
// Linux's default neighbour locktime of one second.
const DefaultGARPRefresh = 1500 * time.Millisecond

// Router is the state of one virtual router. Step is its only mutator; the
// zero Router with a Config is in Initialize.
type Router struct {
	Cfg *Config
	// State is the VRRP state.
	State State
	// Priority is the effective priority: the configured one less the
	// weights of failing tracks.
	Priority int
	// MasterAdverInt is Master_Adver_Interval, learned from the master's
	// advertisements (version 3).
	MasterAdverInt time.Duration
	// Master is the primary address of the current master, when known.
	Master netip.Addr
	// Deadlines holds when each armed timer fires; zero means disarmed.
	Deadlines [numTimers]time.Time
	// Fault is set while a weight-0 track fails; FaultReason says which.
	Fault       bool
	FaultReason string
	// Penalty is the sum of the weights of failing tracks.
	Penalty int
	// Releasing is set while a master that stops or hands over keeps the
	// VIP until its successor has spoken (or TimerRelease fires).
	Releasing bool
	// Stopping is set once Shutdown has been received.
	Stopping bool
	// Yielded is set by a handover: the router does not preempt until it
	// becomes master again.
	Yielded bool
	// Counters, for Stats.
	Transitions  uint64
	BecameMaster uint64
	Conflicts    uint64 // advertisements from another master while master
	LastChange   time.Time
	preemptAt    time.Time
	garpLeft     int
	garpRefresh  bool // the refresh ARP after the burst is due
}

// Event is something that happens to a router.
type Event interface{ event() }

// Startup starts the router (RFC 5798 6.4.1).
type Startup struct{}

// AdvertReceived is a valid advertisement for this router from another one.
type AdvertReceived struct {
	Src      netip.Addr
	Priority int
	Interval time.Duration
}

// TimerFired reports that a timer's deadline passed.
type TimerFired struct{ Timer Timer }

// Shutdown stops the router gracefully: a master announces priority 0 and
// keeps the VIP until its successor has taken it.
type Shutdown struct{}

// Handover makes a master give the VIP to the best backup without stopping.
type Handover struct{}

// HealthChanged reports the tracks' verdict: the sum of the weights of the
// failing tracks, and whether one of weight 0 fails.
type HealthChanged struct {
	Penalty int
	Fault   bool
	Reason  string
}

// Reconfigure swaps the router's Config (a reload). Identity fields
// (interface, VRID, version, addresses, peers) must not change.
type Reconfigure struct{ Cfg *Config }

func (Startup) event()        {}
func (AdvertReceived) event() {}
func (TimerFired) event()     {}
func (Shutdown) event()       {}
func (Handover) event()       {}
func (HealthChanged) event()  {}
func (Reconfigure) event()    {}

// Action is something the driver must do, in order.
type Action interface{ action() }

// SendAdvert sends an advertisement with Priority.
type SendAdvert struct{ Priority int }

// AddVIP adds the virtual addresses to the interface.
type AddVIP struct{}

// RemoveVIP removes the virtual addresses from the interface.
type RemoveVIP struct{}

// SendGARP sends one gratuitous ARP for each virtual address.
type SendGARP struct{}

// ArmTimer sets a timer's deadline; the zero At disarms it.
type ArmTimer struct {
	Timer Timer
	At    time.Time
}

// Transition records a state change, for the log and the counters.
type Transition struct {
	From, To State
	Why      string
}

// Stopped reports that a Shutdown is complete.
type Stopped struct{}

func (SendAdvert) action() {}
func (AddVIP) action()     {}
func (RemoveVIP) action()  {}
func (SendGARP) action()   {}
func (ArmTimer) action()   {}
func (Transition) action() {}
func (Stopped) action()    {}

// NewRouter returns a router in Initialize for cfg.
func NewRouter(cfg *Config) Router {
	return Router{Cfg: cfg, Priority: cfg.Priority, MasterAdverInt: cfg.Interval}
}

// SkewTime is Skew_Time: ((256-Priority) × Master_Adver_Interval) / 256 in
// version 3 (RFC 5798 section 6.1), (256-Priority) / 256 seconds in
// version 2 (RFC 3768 section 6.1).
func (r *Router) SkewTime() time.Duration {
	if r.Cfg.Version == 2 {
		return time.Duration(256-r.Priority) * time.Second / 256
	}
	return time.Duration(256-r.Priority) * r.MasterAdverInt / 256
}

// MasterDownInterval is Master_Down_Interval: 3 × Master_Adver_Interval +
// Skew_Time (version 2: 3 × Advertisement_Interval + Skew_Time).
func (r *Router) MasterDownInterval() time.Duration {
	if r.Cfg.Version == 2 {
		return 3*r.Cfg.Interval + r.SkewTime()
	}
	return 3*r.MasterAdverInt + r.SkewTime()
}

// step accumulates the actions of one Step.
type step struct {
	r   Router
	now time.Time
	out []Action
}

func (s *step) do(a ...Action) { s.out = append(s.out, a...) }

func (s *step) arm(t Timer, after time.Duration) {
	s.r.Deadlines[t] = s.now.Add(after)
	s.do(ArmTimer{Timer: t, At: s.r.Deadlines[t]})
}

func (s *step) disarm(ts ...Timer) {
	for _, t := range ts {
		if !s.r.Deadlines[t].IsZero() {
			s.r.Deadlines[t] = time.Time{}
			s.do(ArmTimer{Timer: t})
		}
	}
}

func (s *step) transition(to State, why string) {
	if s.r.State == to {
		return
	}
	s.do(Transition{From: s.r.State, To: to, Why: why})
	s.r.State = to
	s.r.Transitions++
	s.r.LastChange = s.now
}

// Step applies ev to r at now and returns the new state and the actions the
// driver must carry out, in order. It never blocks and reads no clock.
func Step(r Router, ev Event, now time.Time) (Router, []Action) {
	s := &step{r: r, now: now}
	switch ev := ev.(type) {
	case Startup:
		s.startup()
	case AdvertReceived:
		s.advert(ev)
	case TimerFired:
		s.timer(ev.Timer)
	case Shutdown:
		s.shutdown()
	case Handover:
		if s.r.State == Master && !s.r.Releasing {
			s.r.Yielded = true
			s.release()
		}
	case HealthChanged:
		s.health(ev)
	case Reconfigure:
		s.r.Cfg = ev.Cfg
		s.setPriority(s.r.Penalty)
	}
	return s.r, s.out
}

func (s *step) startup() {
	if s.r.State != Initialize || s.r.Stopping {
		return
	}
	s.r.preemptAt = s.now.Add(s.r.Cfg.PreemptDelay)
	switch {
	case s.r.Fault:
		s.toFault("startup: " + s.r.FaultReason)
	case s.r.Priority == OwnerPriority:
		s.toMaster("startup as address owner")
	default:
		s.toBackup("startup", s.r.Cfg.Interval)
	}
}

func (s *step) toMaster(why string) {
	s.disarm(TimerMasterDown, TimerRelease)
	s.transition(Master, why)
	s.r.BecameMaster++
	s.r.Master = s.r.Cfg.Primary
	s.r.Yielded = false
	// The address first, so that the ARP and the advertisement announce an
	// address that answers.
	if !s.r.Cfg.Owner {
		s.do(AddVIP{})
	}
	s.garpBurst()
	s.do(SendAdvert{Priority: s.r.Priority})
	s.arm(TimerAdver, s.r.Cfg.Interval)
}

// garpBurst sends a gratuitous ARP now and arms the repeats.
func (s *step) garpBurst() {
	s.do(SendGARP{})
	s.r.garpLeft = s.r.Cfg.GARPCount - 1
	s.r.garpRefresh = s.r.Cfg.GARPRefresh > 0
	s.armGARP()
}

// armGARP arms the next gratuitous ARP of a burst, or the refresh after it.
func (s *step) armGARP() {
	switch {
	case s.r.garpLeft > 0:
		s.arm(TimerGARP, s.r.Cfg.GARPInterval)
	case s.r.garpRefresh:
		s.arm(TimerGARP, s.r.Cfg.GARPRefresh)
	}
}

func (s *step) toBackup(why string, masterAdverInt time.Duration) {
	s.disarm(TimerAdver, TimerGARP, TimerRelease)
	s.r.Releasing = false
	s.transition(Backup, why)
	if !s.r.Cfg.Owner {
		s.do(RemoveVIP{})
	}
	if s.r.Cfg.Version == 3 {
		s.r.MasterAdverInt = masterAdverInt
	}
	s.arm(TimerMasterDown, s.r.MasterDownInterval())
}

func (s *step) toFault(why string) {
	s.disarm(TimerAdver, TimerMasterDown, TimerGARP, TimerRelease)
	if s.r.State == Master {
		// Tell the backup at once instead of letting it wait for the
		// master-down timer; the send fails harmlessly if the link is down.
		s.do(SendAdvert{Priority: 0})
	}
	s.r.Releasing = false
	s.transition(Fault, why)
	s.r.Master = netip.Addr{}
	if !s.r.Cfg.Owner {
		s.do(RemoveVIP{})
	}
}

// preempts reports whether a backup may ignore an advertisement of prio.
func (s *step) preempts(prio int) bool {
	return s.r.Cfg.Preempt && !s.r.Yielded && prio < s.r.Priority && !s.now.Before(s.r.preemptAt)
}

func (s *step) advert(ev AdvertReceived) {
	switch s.r.State {
	case Backup:
		switch {
		case ev.Priority == 0:
			s.r.Master = netip.Addr{}
			s.arm(TimerMasterDown, s.r.SkewTime())
		case !s.preempts(ev.Priority):
			s.r.Master = ev.Src
			if s.r.Cfg.Version == 3 {
				s.r.MasterAdverInt = ev.Interval
			}
			s.arm(TimerMasterDown, s.r.MasterDownInterval())
		}
		// Otherwise discard: the master-down timer runs out and this
		// router preempts.
	case Master:
		switch {
		case s.r.Releasing:
			if ev.Priority > 0 {
				// The successor speaks: give it a moment for its ARPs.
				s.r.Master = ev.Src
				if d := s.r.Deadlines[TimerRelease]; d.IsZero() || d.After(s.now.Add(releaseGrace)) {
					s.arm(TimerRelease, releaseGrace)
				}
			}
		case ev.Priority == 0:
			s.do(SendAdvert{Priority: s.r.Priority})
			s.arm(TimerAdver, s.r.Cfg.Interval)
		case ev.Priority > s.r.Priority || (ev.Priority == s.r.Priority && ev.Src.Compare(s.r.Cfg.Primary) > 0):
			s.r.Conflicts++
			s.r.Master = ev.Src
			s.toBackup(fmt.Sprintf("%s has priority %d (ours %d)", ev.Src, ev.Priority, s.r.Priority), ev.Interval)
		default:
			// We win: the other router believes it is master (it missed
			// our advertisements, say under load) and has sent gratuitous
			// ARPs pointing hosts at itself. Announce at once, so that it
			// steps down now, and claim the address back with a new ARP
			// burst; otherwise hosts keep sending to a router that no
			// longer holds the VIP (keepalived's garp_lower_prio_repeat).
			s.r.Conflicts++
			s.do(SendAdvert{Priority: s.r.Priority})
			s.arm(TimerAdver, s.r.Cfg.Interval)
			s.garpBurst()
		}
	}
}

func (s *step) timer(t Timer) {
	if s.r.Deadlines[t].IsZero() {
		return // disarmed after it fired: stale
	}
	s.r.Deadlines[t] = time.Time{}
	switch {
	case t == TimerMasterDown && s.r.State == Backup:
		s.toMaster("master down")
	case t == TimerAdver && s.r.State == Master:
		prio := s.r.Priority
		if s.r.Releasing {
			prio = 0
		}
		s.do(SendAdvert{Priority: prio})
		s.arm(TimerAdver, s.r.Cfg.Interval)
	case t == TimerGARP && s.r.State == Master && (s.r.garpLeft > 0 || s.r.garpRefresh):
		s.do(SendGARP{})
		if s.r.garpLeft > 0 {
			s.r.garpLeft--
		} else {
			s.r.garpRefresh = false
		}
		s.armGARP()
	case t == TimerRelease && s.r.State == Master && s.r.Releasing:
		if s.r.Stopping {
			s.disarm(TimerAdver, TimerGARP)
			s.r.Releasing = false
			s.transition(Initialize, "stopped")
			if !s.r.Cfg.Owner {
				s.do(RemoveVIP{})
			}
			s.do(Stopped{})
			return
		}
		s.toBackup("handed over", s.r.Cfg.Interval)
	}
}

// release starts a planned hand-off: announce priority 0 (so that the best
// backup takes over after its skew time), keep the VIP and keep announcing
// priority 0 until the successor speaks or the release timer runs out.
func (s *step) release() {
	s.r.Releasing = true
	s.disarm(TimerGARP)
	s.do(SendAdvert{Priority: 0})
	s.arm(TimerAdver, s.r.Cfg.Interval)
	// The slowest backup (priority 1) waits one skew time after our
	// priority 0; allow three more intervals for lost packets.
	limit := 4 * s.r.Cfg.Interval
	if s.r.Cfg.Version == 2 {
		limit = 3*s.r.Cfg.Interval + time.Second
	}
	s.arm(TimerRelease, limit)
}

func (s *step) shutdown() {
	if s.r.Stopping {
		return
	}
	s.r.Stopping = true
	if s.r.State == Master {
		if !s.r.Releasing {
			s.release()
		}
		return
	}
	s.disarm(TimerAdver, TimerMasterDown, TimerGARP, TimerRelease)
	s.transition(Initialize, "stopped")
	s.do(Stopped{})
}

func (s *step) health(ev HealthChanged) {
	wasFault := s.r.Fault
	s.r.Fault, s.r.FaultReason = ev.Fault, ev.Reason
	s.setPriority(ev.Penalty)
	if s.r.Stopping || s.r.State == Initialize {
		return
	}
	switch {
	case ev.Fault && !wasFault:
		s.toFault(ev.Reason)
	case !ev.Fault && wasFault && s.r.State == Fault:
		s.r.preemptAt = s.now.Add(s.r.Cfg.PreemptDelay)
		s.toBackup("tracks healthy again", s.r.Cfg.Interval)
	}
}

// setPriority recomputes the effective priority; a master announces a
// change at once.
func (s *step) setPriority(penalty int) {
	s.r.Penalty = penalty
	p := s.r.Cfg.Priority
	if penalty > 0 {
		p = max(1, min(254, p-penalty))
	}
	if p == s.r.Priority {
		return
	}
	s.r.Priority = p
	if s.r.State == Master && !s.r.Releasing {
		s.do(SendAdvert{Priority: p})
		s.arm(TimerAdver, s.r.Cfg.Interval)
	}
}
