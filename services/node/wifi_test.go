package node

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/services/wifi"
)

// TestWlan0Console: the console hears about a connection and about each
// new failure once, with the SSID and never a key.
func TestWlan0Console(t *testing.T) {
	var out strings.Builder
	say := consoleOnce(console{out: &out}, netip.MustParsePrefix("192.168.1.20/24"))
	next := time.Date(2026, 1, 1, 12, 0, 5, 0, time.UTC)
	for _, st := range []wifi.Status{
		{SSID: "home", State: "setting up", Security: "wpa2-psk"},
		{SSID: "home", State: "waiting to retry", LastError: "wlan0 does not exist", NextAttempt: &next},
		{SSID: "home", State: "setting up"},
		{SSID: "home", State: "waiting to retry", LastError: "wlan0 does not exist", NextAttempt: &next},
		{SSID: "home", State: "connecting"},
		{SSID: "home", State: "waiting to retry", LastError: "connecting timed out: network not found"},
		{SSID: "home", State: "connected", BSSID: "02:00:00:00:01:00"},
		{SSID: "home", State: "failed", LastError: "wlan0: WPA2-PSK offload not supported by this radio"},
	} {
		say(st)
	}
	want := `piimage: wlan0: "home" waiting to retry: wlan0 does not exist; retrying at 12:00:05
piimage: wlan0: "home" waiting to retry: connecting timed out: network not found
piimage: wlan0: connected to "home" (access point 02:00:00:00:01:00); 192.168.1.20/24 configured
piimage: wlan0: "home" failed: wlan0: WPA2-PSK offload not supported by this radio
`
	if out.String() != want {
		t.Errorf("console:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestWlan0Interface(t *testing.T) {
	i := wlan0Interface(netip.MustParsePrefix("192.168.1.20/24"), netip.MustParseAddr("192.168.1.1"), 600)
	if i.Name != "wlan0" || len(i.Addrs) != 1 || i.Gateway.String() != "192.168.1.1" || i.Metric != 600 || i.Optional {
		t.Errorf("got %+v", i)
	}
}
