package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/ota"
	"github.com/piimage/piimage/services/supervise"
)

// TestUnhealthySuffix, at the end of a build's version (piimage build
// --version v3+test-unhealthy), makes the image fail its trial health
// checks on purpose. It exists for the rollback test only; no normal
// build has it.
const TestUnhealthySuffix = "+test-unhealthy"

// otaNode is the init's part of over-the-air updates: the agent behind
// POST /ota/update, this boot's trial, and the reboot kind an update asks
// for. PID 1 builds it from the card (ota_linux.go), process mode from a
// --card folder (ota_process.go); nil in process mode without one.
type otaNode struct {
	con console
	log *slog.Logger
	// agent is nil when updates are unavailable (no public key in the
	// image, no boot partition); creds is nil without an admin
	// credential on the data partition (then no HTTPS API).
	agent *ota.Agent
	creds *admin.Credentials
	// trial is this boot's trial; nil for a normal boot.
	trial  *ota.Trial
	health ota.HealthCheck
	// testUnhealthy fails the trial on purpose (TestUnhealthySuffix).
	testUnhealthy bool
	// overlay says where this boot's overlay came from.
	overlay admin.OverlayInfo
	// tryboot makes the next reboot a "0 tryboot" one.
	tryboot atomic.Bool
}

// setRelease notes the running release; a test build that fails its
// trial on purpose gets a short deadline.
func (o *otaNode) setRelease(rel admin.Release) {
	if o.testUnhealthy = isTestUnhealthy(rel.Version); o.testUnhealthy {
		// The rollback test need not wait the full deadline.
		o.health.Deadline = 20 * time.Second
	}
}

// onBoot applies the trial state machine to this boot (the agent must be
// set): it counts a trial boot, rolls a crash-looping trial back, or
// records a trial that never started. reboot says the caller must reboot
// at once (a rollback).
func (o *otaNode) onBoot() (reboot bool, err error) {
	d, t, reason, err := o.agent.OnBoot()
	switch d {
	case ota.InTrial:
		o.trial = t
		o.con.say("trial boot %d of %d of %s in slot %s: it commits once healthy for %v (deadline %v)",
			t.Boots, t.MaxBoots, t.Version, t.Slot, orDefault(o.health.Stable, ota.DefaultHealthStable), orDefault(o.health.Deadline, ota.DefaultHealthDeadline))
	case ota.RollBack:
		o.con.say("%s; rolled back to slot %s (%s), rebooting", reason, t.Previous, t.PreviousVersion)
		if err != nil {
			o.con.say("rolling back: %v", err)
		}
		reboot = true
	case ota.TrialLost:
		o.con.say("update %s rolled back: %s", t.Version, reason)
	}
	return reboot, err
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// serveAdmin serves the admin API until ctx is done. In PID 1 mode it is
// TLS with the cluster credential (OTA routes included) and restricted
// plain HTTP on the same port; without a credential, only the restricted
// plain HTTP. Process mode keeps the plain API of Server.Serve.
func (r *instance) serveAdmin(ctx context.Context, srv *admin.Server, lns []net.Listener) error {
	srv.Control = r.control
	o := r.ota
	if o == nil {
		return srv.Serve(ctx, lns)
	}
	if o.creds == nil {
		return admin.ServeSplit(ctx, lns, nil, nil, srv.PlainHandler())
	}
	var up *admin.OTA
	if o.agent != nil {
		up = &admin.OTA{Agent: o.agent, Log: r.log, Updated: func(res *ota.Result) {
			o.tryboot.Store(res.TryBoot)
			how := "rebooting into it"
			if res.TryBoot {
				how = "rebooting into it with tryboot"
			}
			r.con.say("update %s written to slot %s (%d bytes received, %d copied, %d kept, %.1fs); %s for its trial",
				res.Version, res.Slot, res.Received, res.Copied, res.Kept, res.Took.Seconds(), how)
			if srv.Reboot != nil {
				srv.Reboot(false)
			}
		}}
	}
	r.con.say("admin API: HTTPS with the cluster credential, plain HTTP for /status and /health")
	return admin.ServeSplit(ctx, lns, o.creds.TLSConfig(), srv.SecureHandler(o.creds, up), srv.PlainHandler())
}

// watchTrial runs this boot's trial: every second it checks that eth0 is
// configured, the overlay came from node.yaml (not the last good copy),
// and every supervised service runs healthy without restarting (or has
// ended by choice, supervise.StateFinished); when that holds for the stable period it commits, and when
// the deadline passes first it rolls back and asks for a reboot.
func (o *otaNode) watchTrial(ctx context.Context, sup statuser, eth0Ready <-chan struct{}, reboots chan<- action, overlay admin.OverlayInfo) {
	if o == nil || o.trial == nil || o.agent == nil {
		return
	}
	o.overlay = overlay
	t := *o.trial
	go func() {
		c := ota.NewChecker(o.health, time.Now())
		restarts := map[string]int{}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			v, reason := c.Observe(time.Now(), o.problems(sup, eth0Ready, restarts))
			switch v {
			case ota.Pending:
				continue
			case ota.Pass:
				if err := o.agent.Commit(t); err != nil {
					o.con.say("trial of %s passed its health checks but committing failed: %v", t.Version, err)
					return
				}
				o.con.say("committed %s: slot %s passed its health checks", t.Version, t.Slot)
			case ota.Fail:
				o.con.say("trial of %s failed: %s", t.Version, reason)
				if err := o.agent.Rollback(t, reason); err != nil {
					o.con.say("rolling back: %v", err)
				}
				o.con.say("rolled back to slot %s (%s); rebooting", t.Previous, t.PreviousVersion)
				select {
				case reboots <- actionReboot:
				default:
				}
			}
			return
		}
	}()
}

// problems lists what keeps the trial from passing now. restarts keeps
// each service's restart count between calls: a restart is a problem.
func (o *otaNode) problems(sup statuser, eth0Ready <-chan struct{}, restarts map[string]int) []string {
	var p []string
	select {
	case <-eth0Ready:
	default:
		p = append(p, "eth0 is not configured")
	}
	for _, st := range sup.Status() {
		if n, ok := restarts[st.Name]; ok && st.Restarts != n {
			p = append(p, fmt.Sprintf("%s restarted (%s)", st.Name, st.LastExit))
		}
		restarts[st.Name] = st.Restarts
		// A service that ended with "don't restart" chose to (e.g. a
		// mirror with nothing to mirror on this node).
		if !st.Healthy() && st.State != supervise.StateFinished {
			p = append(p, fmt.Sprintf("%s: %s (%s)", st.Name, st.State, st.Health))
		}
	}
	if o.overlay.Source == admin.SourceLastGood {
		// The new version cannot read the node's node.yaml: committing
		// it would leave the node on a stale copy.
		p = append(p, "node.yaml is not valid for this version (running on the last good copy): "+o.overlay.FallbackReason)
	}
	if o.testUnhealthy {
		p = append(p, "the version ends in "+TestUnhealthySuffix+": this test build fails its health checks on purpose")
	}
	return p
}

// statuser reports the supervised services; a *supervise.Supervisor is one.
type statuser interface{ Status() []supervise.Status }

// isTestUnhealthy reports whether version asks for a failing trial.
func isTestUnhealthy(version string) bool { return strings.HasSuffix(version, TestUnhealthySuffix) }
