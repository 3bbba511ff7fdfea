package lab

import (
	"fmt"
	"syscall"
	"time"
)

// bootPause is how long a rebooted or healed node stays silent before its
// init starts again, standing in for the board's boot.
const bootPause = time.Second

// Fail injects a fault on host (see Faults). link-down, kill, freeze and
// partition last until Heal; reboot is over when Fail returns.
func (l *Lab) Fail(host, how string) error {
	st := l.State
	pn, ok := st.Plan.Node(host)
	if !ok {
		return fmt.Errorf("no node %q in the lab", host)
	}
	if err := checkHow(how); err != nil {
		return err
	}
	for _, f := range st.faultsOf(host) {
		if f.How == how || how == HowReboot || f.How == HowKill || f.How == HowCrash {
			return fmt.Errorf("%s already has the fault %s since %s: run `piimage lab heal %s` first", host, f.How, f.At.Format(time.TimeOnly), host)
		}
	}
	br := st.Plan.BridgeNS
	switch how {
	case HowLinkDown:
		// The bridge's end goes down: the node sees its carrier go, as
		// when its cable is pulled.
		if err := ip("-n", br, "link", "set", pn.Port, "down"); err != nil {
			return err
		}
	case HowPartition:
		// The link stays up, but the node's port leaves the bridge:
		// nothing it sends reaches anyone, and it cannot tell.
		if err := ip("-n", br, "link", "set", pn.Port, "nomaster"); err != nil {
			return err
		}
	case HowFreeze:
		if _, err := signalAll(pn.NS, syscall.SIGSTOP); err != nil {
			return err
		}
	case HowKill:
		// A power cut: every process dies and the node's network goes
		// silent (the namespace's kernel stack would still answer ARP
		// and with resets, which a board without power does not).
		if err := ip("-n", br, "link", "set", pn.Port, "down"); err != nil {
			return err
		}
		if err := st.crashNode(host); err != nil {
			return err
		}
	case HowCrash:
		if err := st.crashNode(host); err != nil {
			return err
		}
	case HowReboot:
		return l.reboot(pn)
	}
	return st.addFault(Fault{Node: host, How: how, At: time.Now().UTC()})
}

// reboot stops the node cleanly (its init stops the services, which hand
// the VIP over), keeps it silent for bootPause and starts it again.
func (l *Lab) reboot(pn PlanNode) error {
	st := l.State
	if err := st.stopNode(pn.Host, 15*time.Second); err != nil {
		return err
	}
	if err := ip("-n", st.Plan.BridgeNS, "link", "set", pn.Port, "down"); err != nil {
		return err
	}
	if err := resetNodeLink(pn); err != nil {
		return err
	}
	time.Sleep(bootPause)
	if err := ip("-n", st.Plan.BridgeNS, "link", "set", pn.Port, "up"); err != nil {
		return err
	}
	return st.startNode(pn.Host)
}

// resetNodeLink puts the node's eth0 back as the board's boot finds it:
// down and without addresses.
func resetNodeLink(pn PlanNode) error {
	if err := ip("-n", pn.NS, "addr", "flush", "dev", "eth0"); err != nil {
		return err
	}
	return ip("-n", pn.NS, "link", "set", "eth0", "down")
}

// Heal undoes the faults of host ("" for every node), newest first, and
// restarts killed nodes.
func (l *Lab) Heal(host string) error {
	st := l.State
	faults := st.faultsOf(host)
	var errs []error
	for i := len(faults) - 1; i >= 0; i-- {
		f := faults[i]
		pn, ok := st.Plan.Node(f.Node)
		if !ok {
			continue
		}
		br := st.Plan.BridgeNS
		var err error
		switch f.How {
		case HowLinkDown:
			err = ip("-n", br, "link", "set", pn.Port, "up")
		case HowPartition:
			err = ip("-n", br, "link", "set", pn.Port, "master", "br0")
		case HowFreeze:
			_, err = signalAll(pn.NS, syscall.SIGCONT)
		case HowKill, HowCrash:
			err = resetNodeLink(pn)
			if err == nil && f.How == HowKill {
				time.Sleep(bootPause)
				err = ip("-n", br, "link", "set", pn.Port, "up")
			}
			if err == nil {
				err = st.startNode(pn.Host)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("healing %s on %s: %w", f.How, f.Node, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return st.dropFaults(host)
}

// Drain sets (or clears) the drain flag of backend in every load
// balancer's overlay copy and makes their inits reload it (SIGHUP): the
// balancers stop sending new requests to it without dropping any.
func (l *Lab) Drain(backend string, drain bool) error {
	st := l.State
	n := 0
	for _, pn := range st.Plan.Nodes {
		if !pn.IsLB() {
			continue
		}
		ok, err := setDrain(pn.Overlay, backend, drain)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		n++
		if p, ok := st.Procs[pn.Host]; ok && p.alive() {
			if err := syscall.Kill(p.PID, syscall.SIGHUP); err != nil {
				return fmt.Errorf("asking %s to reload: %w", pn.Host, err)
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no load balancer has a backend named %q", backend)
	}
	return nil
}
