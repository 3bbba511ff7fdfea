package overlays

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// vipLB is an lbmaster overlay whose vip section is section, indented under
// "vip:".
func vipLB(section string) string {
	return `hostname: lb01
role: lbmaster
interfaces:
  eth0: {address: 192.168.1.14/24}
  wlan0: {address: 192.168.2.14/24, ssid: x, psk: yyyyyyyy}
balancer:
  backends: [{name: web01, address: "192.168.1.10:80"}]
vip:
` + section
}

func TestVIPValid(t *testing.T) {
	n, err := Parse("lb.yaml", []byte(vipLB(`  router_id: 77
  priority: 101
  address: 192.168.1.15/24
  addresses: [192.168.1.16/32]
  version: 2
  advert_interval: 2s
  preempt: false
  garp: {count: 5, interval: 10ms}
  virtual_mac: true
  peers: [192.168.1.13]
  track:
    balancer: {weight: 50}
    interfaces: [{name: wlan0}]
    http: [{url: "http://127.0.0.1:8080/health", weight: 20, fall: 3}]
  routers:
    - router_id: 78
      interface: wlan0
      priority: 50
      address: 192.168.2.15/24
`)))
	if err != nil {
		t.Fatal(err)
	}
	v := n.VIP
	if v.VersionOrDefault() != 2 || v.AdvertIntervalOrDefault() != 2*time.Second || v.PreemptOrDefault() ||
		v.GARP.CountOrDefault() != 5 || !v.VirtualMAC || len(v.AllAddresses()) != 2 || len(v.AllRouters()) != 2 {
		t.Errorf("got %+v", v)
	}
	r := v.AllRouters()[1]
	if r.VersionOrDefault() != 3 || r.AdvertIntervalOrDefault() != DefaultAdvertInterval || !r.PreemptOrDefault() ||
		r.GARP.CountOrDefault() != DefaultGARPCount || r.GARP.IntervalOrDefault() != DefaultGARPInterval {
		t.Errorf("defaults of second router: %+v", r)
	}
}

func TestVIPInvalid(t *testing.T) {
	base := "  router_id: 77\n  priority: 101\n  address: 192.168.1.15/24\n"
	tests := []struct {
		name, section, field, msg string
	}{
		{"version", base + "  version: 4\n", "vip.version", "not a VRRP version"},
		{"v2 centiseconds", base + "  version: 2\n  advert_interval: 100ms\n", "vip.advert_interval", "whole seconds"},
		{"v3 too fast", base + "  advert_interval: 5ms\n", "vip.advert_interval", "10ms to 40.95s"},
		{"extra address outside subnet", base + "  addresses: [10.0.0.1/24]\n", "vip.addresses[0]", "outside 192.168.1.0/24"},
		{"extra address duplicate", base + "  addresses: [192.168.1.15/24]\n", "vip.addresses[0]", "also vip.address"},
		{"priority 255 not owner", "  router_id: 77\n  priority: 255\n  address: 192.168.1.15/24\n", "vip.priority", "only for the node that owns"},
		{"preempt delay without preempt", base + "  preempt: false\n  preempt_delay: 5s\n", "vip.preempt_delay", "no effect"},
		{"garp count", base + "  garp: {count: 1000}\n", "vip.garp.count", "out of range"},
		{"track weight", base + "  track: {balancer: {weight: 300}}\n", "vip.track.balancer.weight", "out of range"},
		{"track interface", base + "  track: {interfaces: [{name: eth7}]}\n", "vip.track.interfaces[0].name", "not an interface"},
		{"track http url", base + "  track: {http: [{url: \"ftp://x\"}]}\n", "vip.track.http[0].url", "not an http"},
		{"track http name", base + "  track: {http: [{url: \"http://lb/health\"}]}\n", "vip.track.http[0].url", "literal IP"},
		{"vrid clash", base + "  routers: [{router_id: 77, priority: 10, address: 192.168.1.20/24}]\n", "vip.routers[0].router_id", "clashes with vip.router_id"},
		{"same vrid other interface is fine but vip clash", base + "  routers: [{router_id: 77, interface: wlan0, priority: 10, address: 192.168.1.15/24}]\n", "vip.routers[0].address", "outside 192.168.2.0/24"},
		{"vip in two routers", base + "  routers: [{router_id: 78, priority: 10, address: 192.168.1.15/24}]\n", "vip.routers[0].address", "also vip.address"},
		{"nested routers", base + "  routers: [{router_id: 78, priority: 10, address: 192.168.1.20/24, routers: [{router_id: 79, priority: 1, address: 192.168.1.21/24}]}]\n", "vip.routers[0].routers", "cannot nest"},
		{"virtual mac of the owner", "  router_id: 77\n  priority: 255\n  address: 192.168.1.14/24\n  virtual_mac: true\n", "vip.virtual_mac", "owner"},
		{"peer is vip", base + "  addresses: [192.168.1.16/24]\n  peers: [192.168.1.16]\n", "vip.peers[0]", "VIP itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("lb.yaml", []byte(vipLB(tt.section)))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			for _, p := range e.Problems {
				if p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("no problem at %s containing %q in:\n%v", tt.field, tt.msg, err)
		})
	}
}
