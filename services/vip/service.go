// Package vip runs VRRP (RFC 5798 version 3, RFC 3768 version 2) for the
// floating addresses the load balancers share, interoperating with
// keepalived.
//
// It has three layers: a codec with no sockets (Parse, Packet.Marshal), a
// pure state machine (Step) driven by events and an injected clock, and a
// thin Linux driver (raw socket of protocol 112, netlink, packet socket for
// gratuitous ARP).
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
)

// Tracker reports the health of something the VIP follows, such as the
// local balancer: nil when healthy.
type Tracker interface{ Health() error }

// TrackerFunc adapts a function to Tracker.
type TrackerFunc func() error

// Health calls f.
func (f TrackerFunc) Health() error { return f() }

// Options are the optional parts of a Service. The zero Options is valid.
type Options struct {
	// Balancer is the local balancer, tracked by routers whose overlay has
	// track.balancer; nil means such a track always fails.
	Balancer Tracker
	// sys replaces the operating system in tests; nil means the real one.
	sys system
}

// Service runs the node's virtual routers.
type Service struct {
	log *slog.Logger
	opt Options

	mu      sync.Mutex
	routers []routerCfg
	run     []*runner // while Run runs
	sys     system    // while Run runs
	running bool
	runErr  error
	drops   map[string]uint64 // drops not attributable to a router
}

// New builds the VIP service from the node's vip section. It is a
// services.Factory.
func New(node *overlays.Node, log *slog.Logger) (services.Service, error) {
	return NewService(node, log, Options{})
}

var _ services.Factory = New

// NewService is New with options.
func NewService(node *overlays.Node, log *slog.Logger, opt Options) (*Service, error) {
	rs, err := configsFromNode(node)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{log: log, opt: opt, routers: rs, drops: map[string]uint64{}}, nil
}

// Run runs every virtual router until ctx is done, then stops them
// gracefully: a master announces priority 0 and keeps its VIP until its
// successor has announced itself (at most four advertisement intervals).
func (s *Service) Run(ctx context.Context) error {
	sys := s.opt.sys
	if sys == nil {
		var err error
		if sys, err = newSystem(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("vip: already running")
	}
	routers := s.routers
	s.mu.Unlock()

	// One socket per interface, shared by the routers on it.
	byIf := map[string][]*runner{}
	var order []string
	var runners []*runner
	for _, rc := range routers {
		r := newRunner(rc, s.log)
		if byIf[rc.cfg.Interface] == nil {
			order = append(order, rc.cfg.Interface)
		}
		byIf[rc.cfg.Interface] = append(byIf[rc.cfg.Interface], r)
		runners = append(runners, r)
	}
	var ios []netIO
	closeAll := func() {
		for _, io := range ios {
			io.Close()
		}
	}
	for _, ifname := range order {
		join := false
		for _, r := range byIf[ifname] {
			join = join || len(r.cfg().Peers) == 0
		}
		io, err := sys.Open(ifname, join)
		if err != nil {
			closeAll()
			return err
		}
		ios = append(ios, io)
		for _, r := range byIf[ifname] {
			r.io = io
		}
	}
	// A hold on new connections left by an earlier run (a planned
	// handover before a restart) must not outlive it.
	if err := sys.UnblockNew(); err != nil {
		s.log.Debug("removing an earlier hold on new connections", "err", err)
	}
	s.mu.Lock()
	s.run, s.running, s.runErr, s.sys = runners, true, nil, sys
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		if err := sys.UnblockNew(); err != nil {
			s.log.Debug("removing the hold on new connections", "err", err)
		}
	}()

	var wg sync.WaitGroup
	rctx, cancelReaders := context.WithCancel(context.Background())
	for i, ifname := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.readLoop(rctx, ios[i], byIf[ifname])
		}()
	}
	trackCtx, stopTracks := context.WithCancel(ctx)
	tr := newTracking(sys, s.opt.Balancer, s.log)
	go tr.run(trackCtx, runners)

	// A graceful stop first holds back new connections to the VIPs this
	// node serves, then the routers hand over (priority 0).
	loopCtx, stopLoops := context.WithCancel(context.Background())
	defer stopLoops()
	go func() {
		select {
		case <-ctx.Done():
			s.quiesce(sys, runners)
			stopLoops()
		case <-loopCtx.Done():
		}
	}()
	var rwg sync.WaitGroup
	for _, r := range runners {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			r.loop(loopCtx)
		}()
	}
	rwg.Wait()
	stopTracks()
	cancelReaders()
	closeAll()
	wg.Wait()
	return nil
}

// readLoop reads the interface's VRRP packets and hands each to its router.
func (s *Service) readLoop(ctx context.Context, io netIO, rs []*runner) {
	for ctx.Err() == nil {
		rx, err := io.Recv()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("reading VRRP", "err", err)
				s.mu.Lock()
				s.runErr = err
				s.mu.Unlock()
				time.Sleep(100 * time.Millisecond) // a broken socket must not spin
			}
			continue
		}
		cfgs := make([]*Config, len(rs))
		for i, r := range rs {
			cfgs[i] = r.cfg()
		}
		i, ev, drop := classify(rx, cfgs)
		switch {
		case drop == DropOwn:
			// Our own advertisement, looped back: not an error.
		case drop != "" && i < 0:
			s.mu.Lock()
			s.drops[drop]++
			s.mu.Unlock()
			s.log.Debug("dropped VRRP packet", "src", rx.Src, "reason", drop)
		case drop != "":
			rs[i].countDrop(drop)
			s.log.Debug("dropped VRRP packet", "src", rx.Src, "vrid", cfgs[i].VRID, "reason", drop)
		default:
			rs[i].received(ev)
		}
	}
}

// Reload applies a changed vip section. Priorities, preemption, intervals,
// ARP and tracking settings change in place; adding or removing routers or
// changing a router's interface, id, version, addresses, peers or virtual MAC needs a
// restart and is refused.
func (s *Service) Reload(node *overlays.Node) error {
	rs, err := configsFromNode(node)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rs) != len(s.routers) {
		return fmt.Errorf("vip: reload changes the number of virtual routers (%d to %d); restart the service", len(s.routers), len(rs))
	}
	for i := range rs {
		if !sameIdentity(s.routers[i].cfg, rs[i].cfg) {
			return fmt.Errorf("vip: reload changes router %d's interface, id, version, addresses, peers or virtual MAC; restart the service", s.routers[i].cfg.VRID)
		}
	}
	s.routers = rs
	if s.running {
		for i, r := range s.run {
			r.reconfigure(rs[i])
		}
	}
	return nil
}

// Health reports nil while the service runs and no router is in fault.
func (s *Service) Health() error {
	s.mu.Lock()
	running, runErr, run := s.running, s.runErr, s.run
	s.mu.Unlock()
	if !running {
		return errors.New("vip: not running")
	}
	if runErr != nil {
		return fmt.Errorf("vip: %w", runErr)
	}
	var errs []error
	for _, r := range run {
		st := r.stats()
		if st.State == Fault.String() {
			errs = append(errs, fmt.Errorf("vip router %d on %s: FAULT: %s", st.VRID, st.Interface, st.Fault))
		}
	}
	return errors.Join(errs...)
}

// Handover makes every router that is master give its VIP to the best
// backup without dropping a request: it announces priority 0, keeps the
// addresses until the successor has announced itself, then becomes a
// backup that does not preempt until it becomes master again. It returns
// once the hand-off is under way; Stats shows its end.
func (s *Service) Handover() error {
	s.mu.Lock()
	run, sys := s.run, s.sys
	s.mu.Unlock()
	if sys != nil && s.quiesce(sys, run) {
		go s.releaseHold(sys, run)
	}
	n := 0
	for _, r := range run {
		if r.stats().State == Master.String() {
			r.send(Handover{})
			n++
		}
	}
	if n == 0 {
		return errors.New("vip: handover: no router is master")
	}
	return nil
}

// Stats is a snapshot of the service for the status page and metrics.
type Stats struct {
	Routers []RouterStats
	// Dropped counts received packets dropped before a router was known
	// (bad TTL, checksum, length, version, unknown router id), by reason.
	Dropped map[string]uint64
}

// RouterStats is one virtual router's state and counters.
type RouterStats struct {
	Interface    string
	VRID         int
	Version      int
	State        string
	Since        time.Time // last state change
	Priority     int       // effective
	BasePriority int
	Master       netip.Addr // the current master, when known
	Addrs        []netip.Prefix
	Fault        string // why the router is in fault
	Transitions  uint64
	BecameMaster uint64
	// Conflicts counts advertisements from another master received while
	// master (split brain being resolved).
	Conflicts        uint64
	AdvertsSent      uint64
	AdvertsReceived  uint64
	PriorityZeroSent uint64
	SendErrors       uint64
	AddrErrors       uint64
	// Dropped counts this router's packets dropped, by reason.
	Dropped map[string]uint64
}

// Stats returns a snapshot of every router.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	run, routers := s.run, s.routers
	st := Stats{Dropped: make(map[string]uint64, len(s.drops))}
	for k, v := range s.drops {
		st.Dropped[k] = v
	}
	s.mu.Unlock()
	if len(run) == 0 {
		for _, rc := range routers {
			c := rc.cfg
			st.Routers = append(st.Routers, RouterStats{Interface: c.Interface, VRID: int(c.VRID), Version: c.Version,
				State: Initialize.String(), Priority: c.Priority, BasePriority: c.Priority, Addrs: c.Addrs})
		}
		return st
	}
	for _, r := range run {
		st.Routers = append(st.Routers, r.stats())
	}
	return st
}

// quiesceDrain is how long a planned handover waits, with new connections
// held back, for the connections in flight to finish before the VIP moves:
// packets of a connection opened here that arrive after the move reach the
// successor, which knows nothing of it and resets it.
const quiesceDrain = 100 * time.Millisecond

// quiesce prepares a planned handover of the VIPs this node holds as
// master: new TCP connections to them are dropped (the client's SYN
// retransmission, after 1 s, reaches the successor) and those in flight
// get quiesceDrain to finish. It reports whether it held anything back.
func (s *Service) quiesce(sys system, run []*runner) bool {
	var addrs []netip.Addr
	for _, r := range run {
		if st := r.stats(); st.State == Master.String() {
			for _, a := range st.Addrs {
				addrs = append(addrs, a.Addr())
			}
		}
	}
	if len(addrs) == 0 {
		return false
	}
	if err := sys.BlockNew(addrs); err != nil {
		s.log.Warn("handing over without holding back new connections", "err", err)
		return false
	}
	s.log.Info("holding back new connections before the handover", "addrs", addrs, "drain", quiesceDrain)
	time.Sleep(quiesceDrain)
	return true
}

// releaseHold lifts quiesce's hold once no router here is master any more
// (the successor answers for the VIPs), or after ten seconds.
func (s *Service) releaseHold(sys system, run []*runner) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitNoMaster(ctx, run)
	if err := sys.UnblockNew(); err != nil {
		s.log.Warn("removing the hold on new connections", "err", err)
	}
}
