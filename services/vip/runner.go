package vip

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"
)

// runner drives one virtual router's state machine with real time and
// carries out its actions on the interface.
type runner struct {
	log    *slog.Logger
	io     netIO
	events chan Event
	done   chan struct{}

	mu    sync.Mutex
	rc    routerCfg
	r     Router // the state after the last step, for Stats
	st    RouterStats
	drops map[string]uint64
}

func newRunner(rc routerCfg, log *slog.Logger) *runner {
	return &runner{
		log:    log.With("vrid", rc.cfg.VRID, "interface", rc.cfg.Interface),
		events: make(chan Event, 64),
		done:   make(chan struct{}),
		rc:     rc,
		r:      NewRouter(rc.cfg),
		drops:  map[string]uint64{},
	}
}

func (r *runner) cfg() *Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rc.cfg
}

func (r *runner) track() trackCfg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rc.track
}

func (r *runner) reconfigure(rc routerCfg) {
	r.mu.Lock()
	r.rc = rc
	r.mu.Unlock()
	r.send(Reconfigure{Cfg: rc.cfg})
}

// send hands ev to the loop, unless the loop has ended.
func (r *runner) send(ev Event) {
	select {
	case r.events <- ev:
	case <-r.done:
	}
}

// received hands a valid advertisement to the loop without blocking the
// reader: a full queue drops it.
func (r *runner) received(ev AdvertReceived) {
	r.mu.Lock()
	r.st.AdvertsReceived++
	r.mu.Unlock()
	select {
	case r.events <- ev:
	default:
		r.countDrop(DropBusy)
	}
}

func (r *runner) countDrop(reason string) {
	r.mu.Lock()
	r.drops[reason]++
	r.mu.Unlock()
}

func (r *runner) stats() RouterStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	c := r.r.Cfg
	st.Interface, st.VRID, st.Version = c.Interface, int(c.VRID), c.Version
	st.State, st.Since, st.Priority, st.BasePriority = r.r.State.String(), r.r.LastChange, r.r.Priority, c.Priority
	st.Master, st.Addrs, st.Transitions = r.r.Master, c.Addrs, r.r.Transitions
	st.BecameMaster, st.Conflicts = r.r.BecameMaster, r.r.Conflicts
	if r.r.Fault {
		st.Fault = r.r.FaultReason
	}
	st.Dropped = maps.Clone(r.drops)
	return st
}

// loop runs the router until ctx is done and its graceful stop completes.
func (r *runner) loop(ctx context.Context) {
	defer close(r.done)
	rt := r.r
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	step := func(ev Event) bool {
		var acts []Action
		rt, acts = Step(rt, ev, time.Now())
		stopped := r.exec(rt, acts)
		r.mu.Lock()
		r.r = rt
		r.mu.Unlock()
		return stopped
	}
	if step(Startup{}) {
		return
	}
	stopping := false
	for {
		next := time.Time{}
		for _, d := range rt.Deadlines {
			if !d.IsZero() && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(0, time.Until(next))
		}
		timer.Reset(wait)
		ctxDone := ctx.Done()
		if stopping {
			ctxDone = nil
		}
		stopped := false
		select {
		case <-ctxDone:
			stopping = true
			stopped = step(Shutdown{})
		case ev := <-r.events:
			stopped = step(ev)
		case <-timer.C:
			stopped = r.fireDue(&rt, step)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if stopped {
			return
		}
	}
}

// fireDue fires every timer whose deadline has passed, earliest first.
func (r *runner) fireDue(rt *Router, step func(Event) bool) bool {
	for range 16 {
		now := time.Now()
		due := Timer(-1)
		for t, d := range rt.Deadlines {
			if !d.IsZero() && !d.After(now) && (due < 0 || d.Before(rt.Deadlines[due])) {
				due = Timer(t)
			}
		}
		if due < 0 {
			return false
		}
		if step(TimerFired{Timer: due}) {
			return true
		}
	}
	return false
}

// exec carries out actions in order; it reports whether the router stopped.
func (r *runner) exec(rt Router, acts []Action) bool {
	c := rt.Cfg
	stopped := false
	for _, a := range acts {
		switch a := a.(type) {
		case SendAdvert:
			r.sendAdvert(c, a.Priority)
		case AddVIP:
			if err := r.io.AddAddrs(c.vmac(), c.Addrs); err != nil {
				r.log.Error("adding VIP", "err", err)
				r.bump(func(st *RouterStats) { st.AddrErrors++ })
			}
		case RemoveVIP:
			if err := r.io.DelAddrs(c.vmac(), c.Addrs); err != nil {
				r.log.Error("removing VIP", "err", err)
				r.bump(func(st *RouterStats) { st.AddrErrors++ })
			}
		case SendGARP:
			if err := r.io.GARP(c.vmac(), c.Addrs); err != nil {
				r.log.Warn("gratuitous ARP", "err", err)
			}
		case Transition:
			r.log.Info("VRRP state change", "from", a.From.String(), "to", a.To.String(), "why", a.Why,
				"priority", rt.Priority, "transitions", rt.Transitions)
		case Stopped:
			stopped = true
		}
	}
	return stopped
}

func (r *runner) bump(f func(st *RouterStats)) {
	r.mu.Lock()
	f(&r.st)
	r.mu.Unlock()
}

func (r *runner) sendAdvert(c *Config, prio int) {
	p := Packet{Version: c.Version, VRID: c.VRID, Priority: uint8(prio), Interval: c.Interval}
	for _, a := range c.Addrs {
		p.Addrs = append(p.Addrs, a.Addr())
	}
	dsts := c.Peers
	if len(dsts) == 0 {
		dsts = []netip.Addr{Group}
	}
	for _, dst := range dsts {
		err := r.io.Send(c.vmac(), p.Marshal(c.Primary, dst), c.Primary, dst)
		r.bump(func(st *RouterStats) {
			if err != nil {
				st.SendErrors++
				return
			}
			st.AdvertsSent++
			if prio == 0 {
				st.PriorityZeroSent++
			}
		})
		if err != nil {
			r.log.Debug("sending advertisement", "err", err)
		}
	}
}
