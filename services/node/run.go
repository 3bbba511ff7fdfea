package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/piimage/piimage/services"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/netconf"
	"github.com/piimage/piimage/services/ota"
	"github.com/piimage/piimage/services/supervise"
	"github.com/piimage/piimage/services/wifi"
)

// action is how a running node ends.
type action int

const (
	actionExit     action = iota // process mode: exit
	actionReboot                 // PID 1: reboot
	actionPoweroff               // PID 1: power off
)

func (a action) String() string {
	return [...]string{"exit", "reboot", "power off"}[a]
}

// Defaults of a instance.
const (
	// linkWait is how long services wait for eth0 (USB adapters enumerate
	// late) before they start anyway.
	linkWait = 60 * time.Second
	// stopTimeout bounds stopping every service (their grace is 5 s).
	stopTimeout = 10 * time.Second
)

// instance is one running node, PID 1 or process mode: everything after
// the overlay is loaded.
type instance struct {
	con      console
	log      *slog.Logger
	initLog  *supervise.Ring
	registry Registry
	loaded   loaded
	release  admin.Release
	slot     string
	// runDir holds the services' health sockets.
	runDir string
	// exe is what the supervisor re-executes, e.g. /proc/self/exe.
	exe string
	// network allows configuring interfaces and binding eth0's address.
	network bool
	// adminAddrs are the admin API's listen addresses, each checked.
	adminAddrs []string
	// linkWait overrides the package's linkWait when not zero.
	linkWait time.Duration
	// ota is the update agent and this boot's trial (ota.go); nil in
	// process mode without a card folder.
	ota *otaNode
	// data is the data partition's check (PID 1); wifi wlan0's manager
	// once Wi-Fi runs. Both for /status.
	data *admin.DataStatus
	wifi atomic.Pointer[wifi.Manager]
}

// run brings the node up, then waits until ctx is done or an action is
// requested (from requests or POST /reboot), stops the services and
// returns the action.
func (r *instance) run(ctx context.Context, requests <-chan action) (action, error) {
	bg, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	reaper := supervise.NewReaper(r.log)
	wg.Go(func() { reaper.Run(bg) })
	sup := supervise.New(supervise.Config{Starter: reaper, Log: r.log})
	wg.Go(func() { sup.Run(bg) })

	reboots := make(chan action, 1)
	hard := r.startHardening(bg, &wg) // hardening.go: the firewall goes in before anything listens
	hard.reloadOnHangup(bg, r.loaded.info.Path)
	lns, err := r.listen(ctx)
	if err != nil {
		return actionExit, err
	}
	srv := r.adminServer(sup, reboots)
	hard.report(srv)
	wg.Go(func() {
		if err := r.serveAdmin(bg, srv, lns); err != nil {
			r.log.Error("admin API stopped", "err", err)
		}
	})

	eth0Ready := make(chan struct{})
	if r.network {
		wg.Go(func() { r.configureNetwork(bg, eth0Ready) })
	} else {
		close(eth0Ready)
	}
	r.waitForEth0(ctx, eth0Ready)
	hard.waitForTime(bg)

	act := actionExit
	if ctx.Err() == nil {
		r.startServices(sup)
		r.ota.watchTrial(bg, sup, eth0Ready, reboots, r.loaded.info)
		r.con.say("%s up (overlay from %s)", r.loaded.node.Hostname, r.loaded.info.Source)
		act = r.serve(ctx, sup, requests, reboots)
	}
	r.con.say("%s: stopping services", act)
	sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
	defer scancel()
	if err := sup.Stop(sctx); err != nil {
		r.log.Error("stopping services", "err", err)
	}
	return act, nil
}

// serviceEnv is the environment of the services: the run folder, and
// whether the init checked that they may change this network namespace
// (network is set only as PID 1 or outside the initial namespace).
func (r *instance) serviceEnv() []string {
	env := append(os.Environ(), RunDirEnv+"="+r.runDir)
	if r.network {
		env = append(env, services.NetworkCheckedEnv+"=1")
	}
	return env
}

// adminServer returns the node's admin API; POST /reboot sends on reboots.
func (r *instance) adminServer(sup *supervise.Supervisor, reboots chan<- action) *admin.Server {
	srv := &admin.Server{
		Node:     r.loaded.node,
		Release:  r.release,
		Slot:     r.slot,
		Overlay:  r.loaded.info,
		Started:  time.Now(),
		Services: sup,
		InitLog:  r.initLog,
		Log:      r.log,
		Reboot: func(poweroff bool) {
			a := actionReboot
			if poweroff {
				a = actionPoweroff
			}
			select {
			case reboots <- a:
			default:
			}
		},
	}
	if r.network {
		srv.Addresses = func() []admin.Address { return interfaceAddrs("eth0", "wlan0") }
	}
	srv.Data = r.data
	if r.ota != nil && r.ota.agent != nil {
		agent := r.ota.agent
		srv.Slots = func() []ota.SlotInfo { return agent.Status().Slots }
	}
	srv.WiFi = func() *wifi.Status {
		if m := r.wifi.Load(); m != nil {
			st := m.Status()
			return &st
		}
		return nil
	}
	return srv
}

// waitForEth0 waits until ready is closed, the link wait is over or ctx
// is done, whichever comes first.
func (r *instance) waitForEth0(ctx context.Context, ready <-chan struct{}) {
	wait := r.linkWait
	if wait == 0 {
		wait = linkWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
		r.con.say("eth0 is not configured after %v; starting the services anyway and still trying", wait)
	case <-ctx.Done():
	}
}

// serve runs the up node until ctx is done or an action is requested.
// SIGHUP makes every service re-read its overlay file (each keeps its
// configuration when the file is invalid).
func (r *instance) serve(ctx context.Context, sup *supervise.Supervisor, requests, reboots <-chan action) action {
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	for {
		select {
		case <-ctx.Done():
			return actionExit
		case a := <-requests:
			return a
		case a := <-reboots:
			return a
		case <-hups:
			for _, st := range sup.Status() {
				if err := sup.Signal(st.Name, syscall.SIGHUP); err != nil {
					r.log.Warn("reload", "service", st.Name, "err", err)
				}
			}
		}
	}
}

// listen opens the admin API's listeners. The loopback one must work;
// another that fails is logged and skipped.
func (r *instance) listen(ctx context.Context) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range r.adminAddrs {
		ln, err := admin.Listen(ctx, a)
		if err != nil {
			host, _, _ := net.SplitHostPort(a)
			if ip, perr := netip.ParseAddr(host); perr == nil && ip.IsLoopback() || len(r.adminAddrs) == 1 {
				for _, l := range lns {
					l.Close()
				}
				return nil, fmt.Errorf("starting the admin API: %w", err)
			}
			r.log.Error("admin API", "err", err)
			continue
		}
		r.con.say("admin API on http://%s", ln.Addr())
		lns = append(lns, ln)
	}
	return lns, nil
}

// startServices supervises the role's services that this binary has.
func (r *instance) startServices(sup *supervise.Supervisor) {
	node := r.loaded.node
	var missing []string
	for _, name := range RoleServices(node.Role) {
		if _, ok := r.registry[name]; !ok {
			missing = append(missing, name)
			continue
		}
		sock := filepath.Join(r.runDir, name+".sock")
		err := sup.Add(supervise.Spec{
			Name:   name,
			Socket: sock,
			Command: supervise.Command{
				Path: r.exe,
				Args: []string{os.Args[0], "service", name, "--overlay", r.loaded.info.Path, "--sock", sock},
				Env:  r.serviceEnv(),
				// Without network permission a service may still send
				// (VRRP adverts, mirror traffic): give it a network
				// namespace of its own with nothing in it.
				NewNetNS: !r.network,
			},
		})
		if err != nil {
			r.log.Error("starting service", "service", name, "err", err)
		}
	}
	if len(missing) > 0 {
		r.con.say("role %s: not built into this image yet: %s", node.Role, strings.Join(missing, ", "))
	}
}

// configureNetwork sets up lo, then eth0 (retrying until the link appears
// or ctx ends; ready is closed once it is configured), then wlan0.
func (r *instance) configureNetwork(ctx context.Context, ready chan<- struct{}) {
	nl := netconf.NewNetlink(nil)
	plan := netconf.Desired(r.loaded.node)
	if lo, ok := plan.Interface("lo"); ok {
		if err := netconf.ApplyInterface(nl, lo, nil); err != nil {
			r.con.say("loopback: %v", err)
		}
	}
	if eth0, ok := plan.Interface("eth0"); ok {
		delay, last := 250*time.Millisecond, ""
		for {
			err := netconf.ApplyInterface(nl, eth0, plan.Keep)
			if err == nil {
				r.con.say("eth0 %v configured", eth0.Addrs)
				break
			}
			if msg := err.Error(); msg != last {
				if errors.Is(err, netconf.ErrNoLink) {
					r.con.say("waiting for eth0 to appear")
				} else {
					r.con.say("%v (retrying)", err)
				}
				last = msg
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, 5*time.Second)
		}
	}
	close(ready)
	r.configureWlan0(ctx, nl, plan) // wifi.go: with an SSID, Wi-Fi runs here until ctx ends
}

// interfaceAddrs lists the addresses of the named interfaces that exist.
func interfaceAddrs(names ...string) []admin.Address {
	var out []admin.Address
	for _, name := range names {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			out = append(out, admin.Address{Interface: name, Address: a.String()})
		}
	}
	return out
}
