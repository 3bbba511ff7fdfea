package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/piimage/piimage/services/netconf"
	"github.com/piimage/piimage/services/wifi"
)

// configureWlan0 configures wlan0 as the overlay says. Without an SSID it
// is a plain interface: its address is set once if the link exists. With
// one, it loads the Wi-Fi driver (PID 1 only; wifi_linux.go) and runs the
// wifi.Manager until ctx is done: connect, retry with backoff, reconnect
// on link loss, the address and route only while associated. It never
// fails: problems go to the console and the init's log, and eth0 and the
// services do not wait for it (configureNetwork calls it after eth0).
func (r *instance) configureWlan0(ctx context.Context, nl netconf.Applier, plan netconf.Plan) {
	w := r.loaded.node.Interfaces.Wlan0
	desired, ok := plan.Interface("wlan0")
	if w == nil || !ok {
		return
	}
	if !w.WiFi() {
		if err := netconf.ApplyInterface(nl, desired, plan.Keep); errors.Is(err, netconf.ErrNoLink) {
			r.con.say("wlan0 is in the overlay but not on this node; skipped")
		} else if err != nil {
			r.con.say("wlan0: %v", err)
		}
		return
	}
	if exists, _, _ := nl.Link("wlan0"); !exists && os.Getpid() != 1 {
		// Process mode loads no driver: wlan0 is there or never.
		r.con.say("wlan0 is in the overlay but not on this node; skipped")
		return
	}
	pmk, err := wifi.PMK(w)
	if err != nil {
		r.con.say("wlan0: %v; Wi-Fi stays off", err)
		return
	}
	r.loadWiFiDriver(ctx) // wifi_linux.go
	associated := wlan0Interface(w.Address, w.Gateway, w.MetricOrDefault())
	m := wifi.New(wifi.Config{
		Interface: "wlan0",
		SSID:      w.SSID,
		PMK:       pmk,
		Country:   w.CountryOrDefault(),
		Radio:     wifi.NewRadio("wlan0", r.log),
		Assign: func(context.Context) error {
			return netconf.ApplyInterface(nl, associated, plan.Keep)
		},
		Unassign: func(context.Context) error {
			return netconf.ApplyInterface(nl, netconf.Interface{Name: "wlan0"}, plan.Keep)
		},
		Log:      r.log,
		OnChange: consoleOnce(r.con, w.Address),
	})
	r.wifi.Store(m)
	if err := m.Run(ctx); err != nil {
		r.con.say("wlan0: %v", err)
	}
}

// consoleOnce returns an OnChange hook that says each new situation on the
// console once: a connection, and a failure whose reason differs from the
// last one said (a network out of reach is retried for hours).
func consoleOnce(con console, addr netip.Prefix) func(wifi.Status) {
	last := ""
	return func(st wifi.Status) {
		switch st.State {
		case "connected", "waiting to retry", "failed":
		default:
			return
		}
		key := st.State + st.LastError
		if st.State == "connected" {
			key = st.State + st.BSSID
		}
		if key == last {
			return
		}
		last = key
		con.say("%s", wlan0Line(st, addr))
	}
}

// wlan0Interface is wlan0's desired state while associated.
func wlan0Interface(addr netip.Prefix, gw netip.Addr, metric int) netconf.Interface {
	return netconf.Interface{Name: "wlan0", Addrs: []netip.Prefix{addr}, Gateway: gw, Metric: metric}
}

// wlan0Line is the console's line about a change of Wi-Fi state. It names
// the SSID, never the key.
func wlan0Line(st wifi.Status, addr netip.Prefix) string {
	switch st.State {
	case "connected":
		return fmt.Sprintf("wlan0: connected to %q (access point %s); %v configured", st.SSID, st.BSSID, addr)
	case "waiting to retry", "failed":
		next := ""
		if st.NextAttempt != nil {
			next = fmt.Sprintf("; retrying at %s", st.NextAttempt.Format("15:04:05"))
		}
		return fmt.Sprintf("wlan0: %q %s: %s%s", st.SSID, st.State, st.LastError, next)
	}
	return fmt.Sprintf("wlan0: %q %s (%s)", st.SSID, st.State, st.Security)
}
