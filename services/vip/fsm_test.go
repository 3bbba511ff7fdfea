package vip

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ours  = netip.MustParseAddr("192.0.2.2")
	lower = netip.MustParseAddr("192.0.2.1")
	upper = netip.MustParseAddr("192.0.2.3")
)

func testConfig(mod func(c *Config)) *Config {
	c := &Config{
		Interface: "eth0", VRID: 51, Version: 3, Priority: 100, Interval: time.Second,
		Preempt: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
		Primary: ours, GARPCount: 3, GARPInterval: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func at(d time.Duration) time.Time { return t0.Add(d) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// fmtActions renders actions as one line each, with times relative to t0,
// so that failures read like a log.
func fmtActions(as []Action) string {
	var b strings.Builder
	for _, a := range as {
		switch a := a.(type) {
		case ArmTimer:
			if a.At.IsZero() {
				fmt.Fprintf(&b, "disarm %s\n", a.Timer)
			} else {
				fmt.Fprintf(&b, "arm %s %s\n", a.Timer, a.At.Sub(t0))
			}
		case Transition:
			fmt.Fprintf(&b, "%s->%s\n", a.From, a.To)
		case SendAdvert:
			fmt.Fprintf(&b, "advert %d\n", a.Priority)
		default:
			fmt.Fprintf(&b, "%s\n", strings.TrimPrefix(reflect.TypeOf(a).String(), "vip."))
		}
	}
	return b.String()
}

type stepCase struct {
	at    time.Duration
	ev    Event
	want  string // fmtActions of the actions, lines joined by "; "
	state State
}

func run(t *testing.T, r Router, steps []stepCase) Router {
	t.Helper()
	for i, sc := range steps {
		var acts []Action
		r, acts = Step(r, sc.ev, at(sc.at))
		got := strings.ReplaceAll(strings.TrimSuffix(fmtActions(acts), "\n"), "\n", "; ")
		if got != sc.want {
			t.Errorf("step %d (%T at %s):\n got  %s\n want %s", i, sc.ev, sc.at, got, sc.want)
		}
		if r.State != sc.state {
			t.Errorf("step %d: state %s, want %s", i, r.State, sc.state)
		}
	}
	return r
}

func TestTimers(t *testing.T) {
	tests := []struct {
		version, prio int
		interval, mai time.Duration
		skew, down    time.Duration
	}{
		// RFC 5798: Skew_Time = ((256-Priority) * Master_Adver_Interval) / 256.
		{3, 100, time.Second, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{3, 100, ms(100), ms(100), 60937500, 360937500},
		{3, 254, ms(100), ms(100), 781250, 300781250},
		{3, 1, ms(100), ms(2000), 1992187500, 7992187500},
		// RFC 3768: Skew_Time = (256-Priority)/256 seconds, whatever the interval.
		{2, 100, time.Second, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{2, 200, 2 * time.Second, 5 * time.Second, 218750 * time.Microsecond, 6218750 * time.Microsecond},
	}
	for _, tt := range tests {
		r := NewRouter(testConfig(func(c *Config) { c.Version, c.Priority, c.Interval = tt.version, tt.prio, tt.interval }))
		r.MasterAdverInt = tt.mai
		if got := r.SkewTime(); got != tt.skew {
			t.Errorf("v%d prio %d: SkewTime = %s, want %s", tt.version, tt.prio, got, tt.skew)
		}
		if got := r.MasterDownInterval(); got != tt.down {
			t.Errorf("v%d prio %d: MasterDownInterval = %s, want %s", tt.version, tt.prio, got, tt.down)
		}
	}
}

func TestElection(t *testing.T) {
	const becomeMaster = "BACKUP->MASTER; AddVIP; SendGARP; arm garp %s; advert %d; arm adver %s"
	tests := []struct {
		name  string
		cfg   func(c *Config)
		steps []stepCase
	}{
		{"backup takes over when the master goes silent", nil, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(500), AdvertReceived{Src: upper, Priority: 200, Interval: time.Second}, "arm master-down 4.109375s", Backup},
			{ms(4110), TimerFired{TimerMasterDown}, fmt.Sprintf(becomeMaster, "4.21s", 100, "5.11s"), Master},
			{ms(4210), TimerFired{TimerGARP}, "SendGARP; arm garp 4.31s", Master},
			{ms(4310), TimerFired{TimerGARP}, "SendGARP", Master},
			{ms(5110), TimerFired{TimerAdver}, "advert 100; arm adver 6.11s", Master},
		}},
		{"backup learns the master's interval (v3)", nil, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{0, AdvertReceived{Src: upper, Priority: 200, Interval: ms(200)}, "arm master-down 721.875ms", Backup},
		}},
		{"v2 keeps its own interval", func(c *Config) { c.Version = 2 }, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{0, AdvertReceived{Src: upper, Priority: 200, Interval: time.Second}, "arm master-down 3.609375s", Backup},
		}},
		{"priority 0 cuts the wait to the skew time", nil, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(100), AdvertReceived{Src: upper, Priority: 0, Interval: time.Second}, "arm master-down 709.375ms", Backup},
		}},
		{"preemption discards a lower master", nil, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(100), AdvertReceived{Src: upper, Priority: 50, Interval: time.Second}, "", Backup},
			{ms(3610), TimerFired{TimerMasterDown}, fmt.Sprintf(becomeMaster, "3.71s", 100, "4.61s"), Master},
		}},
		{"equal priority does not preempt", nil, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(100), AdvertReceived{Src: lower, Priority: 100, Interval: time.Second}, "arm master-down 3.709375s", Backup},
		}},
		{"no preemption accepts a lower master", func(c *Config) { c.Preempt = false }, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(100), AdvertReceived{Src: upper, Priority: 50, Interval: time.Second}, "arm master-down 3.709375s", Backup},
		}},
		{"preempt delay", func(c *Config) { c.PreemptDelay = 5 * time.Second }, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(4900), AdvertReceived{Src: upper, Priority: 50, Interval: time.Second}, "arm master-down 8.509375s", Backup},
			{ms(5900), AdvertReceived{Src: upper, Priority: 50, Interval: time.Second}, "", Backup},
		}},
		{"owner starts as master and keeps its address", func(c *Config) { c.Priority, c.Owner = 255, true }, []stepCase{
			{0, Startup{}, "INIT->MASTER; SendGARP; arm garp 100ms; advert 255; arm adver 1s", Master},
			{ms(100), Shutdown{}, "disarm garp; advert 0; arm adver 1.1s; arm release 4.1s", Master},
			{ms(4100), TimerFired{TimerRelease}, "disarm adver; MASTER->INIT; Stopped", Initialize},
		}},
		{"stale timer is ignored", nil, []stepCase{
			{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
			{ms(10), TimerFired{TimerAdver}, "", Backup},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, NewRouter(testConfig(tt.cfg)), tt.steps)
		})
	}
}

// master returns a router that has just become master at t0+3.609375s.
func master(t *testing.T, mod func(c *Config)) Router {
	t.Helper()
	r := NewRouter(testConfig(mod))
	r, _ = Step(r, Startup{}, t0)
	r, _ = Step(r, TimerFired{TimerMasterDown}, t0)
	if r.State != Master {
		t.Fatalf("state %s", r.State)
	}
	return r
}

func TestMaster(t *testing.T) {
	tests := []struct {
		name      string
		steps     []stepCase
		conflicts uint64
	}{
		{"higher priority wins (split brain heals)", []stepCase{
			{ms(10), AdvertReceived{Src: lower, Priority: 150, Interval: ms(500)}, "disarm adver; disarm garp; MASTER->BACKUP; RemoveVIP; arm master-down 1.8146875s", Backup},
		}, 1},
		{"equal priority: higher address wins", []stepCase{
			{ms(10), AdvertReceived{Src: upper, Priority: 100, Interval: time.Second}, "disarm adver; disarm garp; MASTER->BACKUP; RemoveVIP; arm master-down 3.619375s", Backup},
		}, 1},
		{"equal priority: lower address loses and reclaims the address", []stepCase{
			{ms(10), AdvertReceived{Src: lower, Priority: 100, Interval: time.Second}, "advert 100; arm adver 1.01s; SendGARP; arm garp 110ms", Master},
		}, 1},
		{"a lower-priority master is answered at once and its ARPs overridden", []stepCase{
			{ms(10), AdvertReceived{Src: upper, Priority: 99, Interval: time.Second}, "advert 100; arm adver 1.01s; SendGARP; arm garp 110ms", Master},
			{ms(110), TimerFired{TimerGARP}, "SendGARP; arm garp 210ms", Master},
		}, 1},
		{"priority 0 from another is answered at once", []stepCase{
			{ms(10), AdvertReceived{Src: upper, Priority: 0, Interval: time.Second}, "advert 100; arm adver 1.01s", Master},
		}, 0},
		{"graceful stop keeps the VIP until the successor speaks", []stepCase{
			{ms(10), Shutdown{}, "disarm garp; advert 0; arm adver 1.01s; arm release 4.01s", Master},
			{ms(80), AdvertReceived{Src: lower, Priority: 50, Interval: time.Second}, "arm release 180ms", Master},
			{ms(90), AdvertReceived{Src: lower, Priority: 50, Interval: time.Second}, "", Master},
			{ms(180), TimerFired{TimerRelease}, "disarm adver; MASTER->INIT; RemoveVIP; Stopped", Initialize},
			{ms(200), TimerFired{TimerAdver}, "", Initialize},
		}, 0},
		{"graceful stop with nobody to take over", []stepCase{
			{ms(10), Shutdown{}, "disarm garp; advert 0; arm adver 1.01s; arm release 4.01s", Master},
			{ms(1010), TimerFired{TimerAdver}, "advert 0; arm adver 2.01s", Master},
			{ms(4010), TimerFired{TimerRelease}, "disarm adver; MASTER->INIT; RemoveVIP; Stopped", Initialize},
		}, 0},
		{"handover ends in backup without preempting back", []stepCase{
			{ms(10), Handover{}, "disarm garp; advert 0; arm adver 1.01s; arm release 4.01s", Master},
			{ms(600), AdvertReceived{Src: lower, Priority: 50, Interval: time.Second}, "arm release 700ms", Master},
			{ms(700), TimerFired{TimerRelease}, "disarm adver; MASTER->BACKUP; RemoveVIP; arm master-down 4.309375s", Backup},
			{ms(1600), AdvertReceived{Src: lower, Priority: 50, Interval: time.Second}, "arm master-down 5.209375s", Backup},
			{ms(5300), TimerFired{TimerMasterDown}, "BACKUP->MASTER; AddVIP; SendGARP; arm garp 5.4s; advert 100; arm adver 6.3s", Master},
		}, 0},
		{"fault gives up at once and recovers to backup", []stepCase{
			{ms(10), HealthChanged{Fault: true, Reason: "link eth0 down"}, "disarm adver; disarm garp; advert 0; MASTER->FAULT; RemoveVIP", Fault},
			{ms(20), AdvertReceived{Src: lower, Priority: 50, Interval: time.Second}, "", Fault},
			{ms(30), TimerFired{TimerMasterDown}, "", Fault},
			{ms(40), HealthChanged{}, "FAULT->BACKUP; RemoveVIP; arm master-down 3.649375s", Backup},
		}, 0},
		{"a failing track lowers the priority and says so", []stepCase{
			{ms(10), HealthChanged{Penalty: 60}, "advert 40; arm adver 1.01s", Master},
			{ms(20), AdvertReceived{Src: lower, Priority: 50, Interval: time.Second}, "disarm adver; disarm garp; MASTER->BACKUP; RemoveVIP; arm master-down 3.86375s", Backup},
			{ms(30), HealthChanged{Penalty: 0}, "", Backup},
		}, 1},
		{"penalty never drops below 1", []stepCase{
			{ms(10), HealthChanged{Penalty: 500}, "advert 1; arm adver 1.01s", Master},
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, master(t, nil), tt.steps)
			if r.Conflicts != tt.conflicts {
				t.Errorf("Conflicts = %d, want %d", r.Conflicts, tt.conflicts)
			}
		})
	}
}

func TestShutdownFromBackupAndFault(t *testing.T) {
	r := NewRouter(testConfig(nil))
	run(t, r, []stepCase{
		{0, Startup{}, "INIT->BACKUP; RemoveVIP; arm master-down 3.609375s", Backup},
		{ms(10), Shutdown{}, "disarm master-down; BACKUP->INIT; Stopped", Initialize},
		{ms(20), Startup{}, "", Initialize},
	})
	r = NewRouter(testConfig(nil))
	run(t, r, []stepCase{
		{0, HealthChanged{Fault: true, Reason: "balancer"}, "", Initialize},
		{0, Startup{}, "INIT->FAULT; RemoveVIP", Fault},
		{ms(10), Shutdown{}, "FAULT->INIT; Stopped", Initialize},
	})
}

// TestTwoRouters runs two state machines against each other on a simulated
// wire with an injected clock: election, failure of the master, preemption
// when it returns, and a planned handover in which the VIP is never absent.
func TestTwoRouters(t *testing.T) {
	a := NewRouter(testConfig(func(c *Config) { c.Priority, c.Primary, c.Interval = 200, upper, ms(100) }))
	b := NewRouter(testConfig(func(c *Config) { c.Priority, c.Primary, c.Interval = 100, lower, ms(100) }))
	sim := newSim(&a, &b)
	sim.deliver(0, Startup{}, 1)
	sim.deliver(ms(5), Startup{}, 0)
	sim.runUntil(ms(2000))
	if a.State != Master || b.State != Backup || !sim.holds[0] || sim.holds[1] {
		t.Fatalf("after election: a %s b %s holds %v", a.State, b.State, sim.holds)
	}
	// a dies silently: b takes over within Master_Down_Interval.
	sim.dead[0] = true
	died := sim.now
	sim.runUntil(sim.now + ms(1000))
	if b.State != Master || b.LastChange.Sub(at(died)) > b.MasterDownInterval() {
		t.Fatalf("after a died: b %s at %s", b.State, b.LastChange.Sub(at(died)))
	}
	// a comes back (restarted) and preempts.
	sim.dead[0] = false
	a = NewRouter(a.Cfg)
	sim.deliver(sim.now, Startup{}, 0)
	sim.runUntil(sim.now + ms(1000))
	if a.State != Master || b.State != Backup || sim.holds[1] {
		t.Fatalf("after a returned: a %s b %s holds %v", a.State, b.State, sim.holds)
	}
	// A planned handover: some router holds the VIP at every instant.
	sim.watchGap = true
	sim.deliver(sim.now, Handover{}, 0)
	sim.runUntil(sim.now + ms(1000))
	if a.State != Backup || b.State != Master || sim.gap {
		t.Fatalf("after handover: a %s b %s gap %v", a.State, b.State, sim.gap)
	}
	// a stays backup though it has the higher priority.
	sim.runUntil(sim.now + ms(2000))
	if a.State != Backup || b.State != Master {
		t.Fatalf("after handover settled: a %s b %s", a.State, b.State)
	}
	// b stops gracefully: a takes over without a gap.
	sim.deliver(sim.now, Shutdown{}, 1)
	sim.runUntil(sim.now + ms(1000))
	if a.State != Master || b.State != Initialize || sim.gap || !sim.stopped[1] {
		t.Fatalf("after b stopped: a %s b %s gap %v stopped %v", a.State, b.State, sim.gap, sim.stopped)
	}
}

// sim connects routers by a lossless wire with 1ms latency and fires their
// timers in order of time.
type sim struct {
	rs       []*Router
	now      time.Duration
	queue    []simEvent
	holds    []bool
	dead     []bool
	stopped  []bool
	watchGap bool
	gap      bool
}

type simEvent struct {
	at time.Duration
	to int
	ev Event
}

func newSim(rs ...*Router) *sim {
	return &sim{rs: rs, holds: make([]bool, len(rs)), dead: make([]bool, len(rs)), stopped: make([]bool, len(rs))}
}

func (s *sim) deliver(atT time.Duration, ev Event, to int) {
	s.queue = append(s.queue, simEvent{atT, to, ev})
}

// next pops the earliest event: queued ones first, then timers.
func (s *sim) next(limit time.Duration) (simEvent, bool) {
	best, bi := simEvent{at: limit + 1}, -1
	for i, e := range s.queue {
		if e.at < best.at {
			best, bi = e, i
		}
	}
	for i, r := range s.rs {
		for t, d := range r.Deadlines {
			if !d.IsZero() && d.Sub(t0) < best.at {
				best, bi = simEvent{d.Sub(t0), i, TimerFired{Timer(t)}}, -2
			}
		}
	}
	if best.at > limit {
		return best, false
	}
	if bi >= 0 {
		s.queue = append(s.queue[:bi], s.queue[bi+1:]...)
	}
	return best, true
}

func (s *sim) runUntil(limit time.Duration) {
	for n := 0; n < 10000; n++ {
		e, ok := s.next(limit)
		if !ok {
			break
		}
		s.now = e.at
		if s.dead[e.to] {
			if tf, ok := e.ev.(TimerFired); ok {
				s.rs[e.to].Deadlines[tf.Timer] = time.Time{}
			}
			continue
		}
		var acts []Action
		*s.rs[e.to], acts = Step(*s.rs[e.to], e.ev, at(e.at))
		for _, a := range acts {
			switch a := a.(type) {
			case SendAdvert:
				for j := range s.rs {
					if j != e.to {
						s.deliver(e.at+ms(1), AdvertReceived{Src: s.rs[e.to].Cfg.Primary, Priority: a.Priority, Interval: s.rs[e.to].Cfg.Interval}, j)
					}
				}
			case AddVIP:
				s.holds[e.to] = true
			case RemoveVIP:
				s.holds[e.to] = false
			case Stopped:
				s.stopped[e.to] = true
			}
		}
		if s.watchGap && !s.holds[0] && !s.holds[1] {
			s.gap = true
		}
	}
	s.now = limit
}

func TestGARPRefresh(t *testing.T) {
	r := master(t, func(c *Config) { c.GARPRefresh = DefaultGARPRefresh })
	run(t, r, []stepCase{
		{ms(10), AdvertReceived{Src: upper, Priority: 99, Interval: time.Second}, "advert 100; arm adver 1.01s; SendGARP; arm garp 110ms", Master},
		{ms(110), TimerFired{TimerGARP}, "SendGARP; arm garp 210ms", Master},
		{ms(210), TimerFired{TimerGARP}, "SendGARP; arm garp 1.71s", Master},
		{ms(1710), TimerFired{TimerGARP}, "SendGARP", Master},
		{ms(1800), TimerFired{TimerGARP}, "", Master},
	})
}
