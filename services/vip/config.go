package vip

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/piimage/piimage/overlays"
)

// trackCfg is one router's tracking, from the overlay.
type trackCfg struct {
	balancer   *overlays.TrackBalancer
	interfaces []overlays.TrackInterface
	http       []overlays.TrackHTTP
}

// routerCfg is one virtual router with its tracking.
type routerCfg struct {
	cfg   *Config
	track trackCfg
}

// configsFromNode maps the node's vip section to router configurations.
func configsFromNode(node *overlays.Node) ([]routerCfg, error) {
	if node == nil || node.VIP == nil {
		return nil, fmt.Errorf("node has no vip section")
	}
	if err := node.Validate(); err != nil {
		return nil, fmt.Errorf("validating overlay: %w", err)
	}
	var out []routerCfg
	for _, v := range node.VIP.AllRouters() {
		ifname := v.InterfaceOrDefault()
		iface := node.Interface(ifname)
		if iface == nil {
			return nil, fmt.Errorf("vip router %d: interface %s is not configured", v.RouterID, ifname)
		}
		c := &Config{
			Interface:    ifname,
			VRID:         uint8(v.RouterID),
			Version:      v.VersionOrDefault(),
			Priority:     v.Priority,
			Interval:     v.AdvertIntervalOrDefault(),
			Preempt:      v.PreemptOrDefault(),
			PreemptDelay: v.PreemptDelay.Duration,
			Addrs:        v.AllAddresses(),
			Primary:      iface.Address.Addr(),
			Peers:        slices.Clone(v.Peers),
			GARPCount:    v.GARP.CountOrDefault(),
			GARPInterval: v.GARP.IntervalOrDefault(),
			GARPRefresh:  DefaultGARPRefresh,
			VirtualMAC:   v.VirtualMAC,
		}
		c.Owner = c.Priority == OwnerPriority
		if err := c.check(); err != nil {
			return nil, err
		}
		out = append(out, routerCfg{cfg: c, track: trackCfg{balancer: v.Track.Balancer, interfaces: v.Track.Interfaces, http: v.Track.HTTP}})
	}
	for i, a := range out {
		for _, b := range out[:i] {
			if a.cfg.Interface == b.cfg.Interface && a.cfg.VRID == b.cfg.VRID {
				return nil, fmt.Errorf("vip: router_id %d is used twice on %s", a.cfg.VRID, a.cfg.Interface)
			}
		}
	}
	return out, nil
}

// check refuses a configuration the state machine and codec cannot run;
// the overlay's validation reports the same problems with field paths.
func (c *Config) check() error {
	switch {
	case c.VRID == 0:
		return fmt.Errorf("vip: router_id 0 is not a VRRP router id")
	case c.Version != 2 && c.Version != 3:
		return fmt.Errorf("vip router %d: VRRP version %d is not 2 or 3", c.VRID, c.Version)
	case c.Priority < 1 || c.Priority > OwnerPriority:
		return fmt.Errorf("vip router %d: priority %d is out of range 1..255", c.VRID, c.Priority)
	case c.Version == 3 && (c.Interval < 10*time.Millisecond || c.Interval > 4095*10*time.Millisecond || c.Interval%(10*time.Millisecond) != 0):
		return fmt.Errorf("vip router %d: advert interval %s does not fit VRRPv3 centiseconds", c.VRID, c.Interval)
	case c.Version == 2 && (c.Interval < time.Second || c.Interval > 255*time.Second || c.Interval%time.Second != 0):
		return fmt.Errorf("vip router %d: advert interval %s does not fit VRRPv2 seconds", c.VRID, c.Interval)
	case len(c.Addrs) == 0 || len(c.Addrs) > maxAddrs:
		return fmt.Errorf("vip router %d: %d addresses", c.VRID, len(c.Addrs))
	case !c.Primary.Is4():
		return fmt.Errorf("vip router %d: interface %s has no IPv4 address", c.VRID, c.Interface)
	}
	for _, a := range c.Addrs {
		if a.Addr() == c.Primary && !c.Owner {
			return fmt.Errorf("vip router %d: %s is the interface's own address; only priority 255 may own it", c.VRID, a.Addr())
		}
		if a.Addr() != c.Primary && c.Owner {
			return fmt.Errorf("vip router %d: priority 255 but %s is not this node's address", c.VRID, a.Addr())
		}
	}
	return nil
}

// vmac returns the netIO vmac argument of c: its VRID when it uses the
// virtual MAC, else 0.
func (c *Config) vmac() uint8 {
	if c.VirtualMAC {
		return c.VRID
	}
	return 0
}

// sameIdentity reports whether b can replace a by a Reconfigure event.
func sameIdentity(a, b *Config) bool {
	return a.Interface == b.Interface && a.VRID == b.VRID && a.Version == b.Version &&
		a.Primary == b.Primary && a.VirtualMAC == b.VirtualMAC && slices.Equal(a.Addrs, b.Addrs) && slices.Equal(a.Peers, b.Peers)
}

// httpClient is the client of HTTP tracks: no proxies, no keep-alive.
func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}
