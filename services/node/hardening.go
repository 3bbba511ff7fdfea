package node

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/firewall"
	"github.com/piimage/piimage/services/timesync"
)

// timeWait bounds how long PID 1 holds the services back for a first time
// server answer once eth0 is up, so that TLS and logs start with a real
// clock when the network allows.
const timeWait = 5 * time.Second

// hardening is the node's firewall and clock: installed and started by
// the runtime before the services, reported on /status.
type hardening struct {
	con console
	wg  *sync.WaitGroup

	// applier installs rulesets (at boot and on reloads); nil without
	// network permission.
	applier *firewall.Applier

	// mu guards the firewall's state below: reloads change it while
	// /status reads it.
	mu sync.Mutex
	// fw is the applier of the installed ruleset; nil when there is none.
	fw       *firewall.Applier
	ruleset  *firewall.Ruleset
	disabled bool
	fwErr    error
	// reloadErr says why the last reload left the rules as they were.
	reloadErr error

	sync    *timesync.Syncer // nil when the node touches no network
	syncRun bool             // whether rounds run (there are servers)
}

// startHardening installs the firewall, before the admin API listens and
// the services start, and prepares the time sync (started by waitForTime
// once eth0 is up). Without network permission (process mode's
// --no-network, the machine's own namespace) it touches nothing.
func (r *instance) startHardening(ctx context.Context, wg *sync.WaitGroup) *hardening {
	h := &hardening{con: r.con, wg: wg}
	if !r.network {
		return h
	}
	pid1 := os.Getpid() == 1
	h.installFirewall(r.loaded.node.FirewallEnabled(), func(o firewall.Options) *firewall.Ruleset {
		return firewall.Generate(r.loaded.node, o)
	}, &firewall.Applier{AllowInitial: pid1})

	// The clock is the whole machine's, whatever the namespaces: only the
	// machine's own init sets it, never an init that a test runs as PID 1
	// of a PID namespace (there PID 2 is not the kernel's kthreadd).
	setClock := pid1 && machineInit()
	if setClock {
		floorClock(r.con, r.release.Built)
	}
	n := r.loaded.node
	h.sync = &timesync.Syncer{
		Servers:  n.TimeServersOrDefault(),
		Interval: n.TimeIntervalOrDefault(),
		Clock:    timesync.SystemClock{},
		SetClock: setClock,
		Log:      r.log.With("part", "timesync"),
	}
	h.syncRun = len(h.sync.Servers) > 0
	if !h.syncRun {
		why := "no time server: add time.servers or a gateway on eth0"
		if n.Time != nil && n.Time.Disabled {
			why = "time sync is off (time.disabled)"
		}
		r.con.say("the time will not be trusted: %s", why)
		h.sync.Round(ctx) // records the reason for /status
	}
	return h
}

// installFirewall applies the ruleset, falling back to one without
// per-source meters when the kernel refuses those.
func (h *hardening) installFirewall(enabled bool, generate func(firewall.Options) *firewall.Ruleset, a *firewall.Applier) {
	h.applier = a
	h.mu.Lock()
	defer h.mu.Unlock()
	if !enabled {
		h.disabled = true
		if err := a.Apply(nil); err != nil {
			h.con.say("firewall disabled by the overlay; removing an old table: %v", err)
		} else {
			h.con.say("firewall disabled by the overlay (firewall.disabled): every port is open")
		}
		return
	}
	rs, err := applyRuleset(generate, a, h.con)
	if err != nil {
		h.fwErr = err
		h.con.say("firewall NOT installed: %v", err)
		return
	}
	h.fw, h.ruleset = a, rs
	h.con.say("firewall installed (nftables table inet %s); public TCP ports: %s", firewall.TableName, orNone(publicTCPPorts(rs)))
	for _, note := range rs.Notes {
		h.con.say("firewall note: %s", note)
	}
}

// applyRuleset generates and applies the ruleset in one atomic batch,
// falling back to one without per-source meters when the kernel refuses
// those. A refused batch changes nothing: the rules in place stay.
func applyRuleset(generate func(firewall.Options) *firewall.Ruleset, a *firewall.Applier, con console) (*firewall.Ruleset, error) {
	rs := generate(firewall.Options{})
	err := a.Apply(rs)
	if err != nil {
		first := err
		rs = generate(firewall.Options{NoMeters: true})
		if err = a.Apply(rs); err == nil {
			con.say("firewall: the kernel refused per-source meters (%v); installed without them", first)
		}
	}
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// publicTCPPorts lists the TCP ports rs opens to everyone.
func publicTCPPorts(rs *firewall.Ruleset) []string {
	var ports []string
	for _, c := range rs.Chains {
		if c.Hook == firewall.HookPrerouting {
			for _, rule := range c.Rules {
				if len(rule.Match) == 1 {
					if p, ok := rule.Match[0].(firewall.TCPDport); ok {
						ports = append(ports, fmt.Sprint(uint16(p)))
					}
				}
			}
		}
	}
	return ports
}

// reloadOnHangup re-applies the firewall from the overlay at path on
// every SIGHUP (when the services re-read theirs) until ctx is done.
func (h *hardening) reloadOnHangup(ctx context.Context, path string) {
	if h.applier == nil {
		return
	}
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	h.wg.Go(func() {
		defer signal.Stop(hups)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hups:
				h.reloadFirewall(path)
			}
		}
	})
}

// reloadFirewall re-reads the overlay at path and replaces the ruleset
// with the one it asks for, in one atomic batch. An invalid overlay or a
// ruleset the kernel refuses leaves the rules in place as they are, so
// that a bad edit never leaves the node without a firewall; the console
// and /status say why.
func (h *hardening) reloadFirewall(path string) {
	if h.applier == nil {
		return
	}
	n, err := overlays.Load(path)
	if err != nil {
		h.reloadFailed(fmt.Errorf("the overlay is invalid: %w", err))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !n.FirewallEnabled() {
		if err := h.applier.Apply(nil); err != nil {
			h.reloadFailedLocked(fmt.Errorf("removing the table: %w", err))
			return
		}
		h.fw, h.ruleset, h.disabled, h.fwErr, h.reloadErr = nil, nil, true, nil, nil
		h.con.say("firewall disabled by the reloaded overlay (firewall.disabled): every port is open")
		return
	}
	rs, err := applyRuleset(func(o firewall.Options) *firewall.Ruleset { return firewall.Generate(n, o) }, h.applier, h.con)
	if err != nil {
		h.reloadFailedLocked(fmt.Errorf("applying the new ruleset: %w", err))
		return
	}
	h.fw, h.ruleset, h.disabled, h.fwErr, h.reloadErr = h.applier, rs, false, nil, nil
	h.con.say("firewall reloaded from %s; public TCP ports: %s", path, orNone(publicTCPPorts(rs)))
	for _, note := range rs.Notes {
		h.con.say("firewall note: %s", note)
	}
}

func (h *hardening) reloadFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloadFailedLocked(err)
}

func (h *hardening) reloadFailedLocked(err error) {
	h.reloadErr = err
	h.con.say("firewall NOT reloaded: %v; %s", err, h.keptLocked())
}

// keptLocked says what stays in place after a failed reload.
func (h *hardening) keptLocked() string {
	switch {
	case h.fw != nil:
		return "the previous rules stay in place"
	case h.disabled:
		return "the firewall stays disabled"
	}
	return "the node still has no firewall"
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// floorClock moves a clock that is before the image's build time (a Pi
// boots in 1970) forward to it: still not trusted, but no longer decades
// off, so certificates and logs are less wrong until a server answers.
func floorClock(con console, built string) {
	t, err := time.Parse(time.RFC3339, built)
	if err != nil || !time.Now().Before(t) {
		return
	}
	if err := (timesync.SystemClock{}).Set(t); err != nil {
		con.say("clock: %v", err)
		return
	}
	con.say("clock set to the image's build time %s until a time server answers", built)
}

// waitForTime starts the time sync (eth0 is up now) and, in PID 1 mode,
// waits up to timeWait for the first answer.
func (h *hardening) waitForTime(ctx context.Context) {
	if h.sync == nil || !h.syncRun {
		return
	}
	h.wg.Go(func() { h.sync.Run(ctx, nil) })
	if !h.sync.SetClock {
		return
	}
	t := time.NewTimer(timeWait)
	defer t.Stop()
	select {
	case <-h.sync.Trusted():
		h.con.say("time set from %s", h.sync.State().Server)
	case <-t.C:
		h.con.say("the time is not trusted yet (%s); starting the services anyway", h.sync.State().LastError)
	case <-ctx.Done():
	}
}

// report makes srv show the firewall and the clock on /status.
func (h *hardening) report(srv *admin.Server) {
	srv.Firewall = h.firewallStatus
	if h.sync != nil {
		srv.Time = h.timeStatus
	}
}

func (h *hardening) firewallStatus() *admin.FirewallStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := &admin.FirewallStatus{Disabled: h.disabled, Installed: h.fw != nil}
	if h.fwErr != nil {
		st.Error = h.fwErr.Error()
	}
	if h.reloadErr != nil {
		st.Error = "the last reload failed: " + h.reloadErr.Error() + "; " + h.keptLocked()
	}
	if h.fw == nil {
		if !h.disabled && h.fwErr == nil && h.reloadErr == nil {
			st.Error = "not installed: this node touches no network interface (--no-network)"
		}
		return st
	}
	st.Notes = h.ruleset.Notes
	cs, err := h.fw.Counters()
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Counters = map[string]admin.PacketCount{}
	for _, c := range cs {
		st.Counters[c.Name] = admin.PacketCount{Packets: c.Packets, Bytes: c.Bytes}
	}
	return st
}

func (h *hardening) timeStatus() *admin.TimeStatus {
	s := h.sync.State()
	servers := append([]string{}, s.Servers...)
	sort.Strings(servers)
	return &admin.TimeStatus{
		Trusted: s.Trusted, Settable: s.Settable, Servers: servers, Server: s.Server,
		LastSync: s.LastSync, OffsetMS: s.OffsetMS, DelayMS: s.DelayMS, LastError: s.LastError,
	}
}
