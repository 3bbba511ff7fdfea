package overlays

import (
	"fmt"
	"log/slog"
	"strings"
)

// The wlan0 section: a static IPv4 address over Wi-Fi, WPA2-PSK or open.
//
//	interfaces:
//	  wlan0:
//	    address: 192.168.1.20/24
//	    gateway: 192.168.1.1   # optional
//	    metric: 600            # optional: the default route's metric (eth0's is 0 and wins)
//	    ssid: home
//	    psk: "a passphrase"    # or pmk: 64 hex digits; neither for an open network
//	    country: DE            # optional: the regulatory domain; default 00 (world)
//
// The PSK is a passphrase of 8 to 63 printable ASCII characters (or, as
// wpa_supplicant takes it, 64 hex digits: the key itself); PMK is the key
// derived from passphrase and SSID ahead of time (PBKDF2-SHA1, 4096
// rounds: the psk= line of `wpa_passphrase SSID PASSPHRASE`), so that the
// passphrase need not sit on the card. Both are secrets: no message of this
// package shows them, and LogValue masks them.
//
// Without an SSID wlan0 is a plain interface (a USB adapter, say): its
// address is set whenever the link exists, as before this section existed.

// Defaults of the wlan0 section.
const (
	// DefaultWlanMetric is the metric of wlan0's default route: above
	// eth0's 0, so that eth0 is preferred when both are up.
	DefaultWlanMetric = 600
	// DefaultCountry is the world regulatory domain.
	DefaultCountry = "00"
)

// maxMetric is the largest route metric (a u32 in the kernel).
const maxMetric = 1<<32 - 1

// WiFi reports whether the interface joins a Wi-Fi network: it names an
// SSID.
func (i *Interface) WiFi() bool {
	return i != nil && i.SSID != ""
}

// MetricOrDefault returns i.Metric, or DefaultWlanMetric when it is unset.
func (i *Interface) MetricOrDefault() int {
	if i.Metric == 0 {
		return DefaultWlanMetric
	}
	return i.Metric
}

// CountryOrDefault returns i.Country, or DefaultCountry when it is unset.
func (i *Interface) CountryOrDefault() string {
	if i.Country == "" {
		return DefaultCountry
	}
	return i.Country
}

// Secured reports whether the network is WPA2-PSK (a PSK or PMK is set)
// rather than open.
func (i *Interface) Secured() bool {
	return i.PSK != "" || i.PMK != ""
}

// LogValue lets slog print an Interface without its secrets.
func (i Interface) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("address", i.Address.String())}
	if i.Gateway.IsValid() {
		attrs = append(attrs, slog.String("gateway", i.Gateway.String()))
	}
	if i.SSID != "" {
		attrs = append(attrs, slog.String("ssid", i.SSID), slog.String("country", i.CountryOrDefault()))
	}
	if i.PSK != "" {
		attrs = append(attrs, slog.String("psk", "********"))
	}
	if i.PMK != "" {
		attrs = append(attrs, slog.String("pmk", "********"))
	}
	return slog.GroupValue(attrs...)
}

// validateNoWiFi reports Wi-Fi settings on an interface that is not wlan0.
func (i *Interface) validateNoWiFi(p *problems, path string) {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"ssid", i.SSID != ""}, {"psk", i.PSK != ""}, {"pmk", i.PMK != ""}, {"country", i.Country != ""},
	} {
		if f.set {
			p.addf(path+"."+f.name, "Wi-Fi settings belong on wlan0")
		}
	}
	if i.Metric != 0 {
		p.addf(path+".metric", "only wlan0 takes a metric; eth0's default route has metric 0, so it is preferred")
	}
}

// validateWiFi checks wlan0's Wi-Fi settings and route metric.
func (i *Interface) validateWiFi(p *problems, path string) {
	switch {
	case len(i.SSID) > 32:
		p.addf(path+".ssid", "is %d bytes long; an SSID has at most 32", len(i.SSID))
	case hasControl(i.SSID):
		p.addf(path+".ssid", "%q holds control characters", i.SSID)
	}
	if i.PSK != "" {
		if i.SSID == "" {
			p.addf(path+".psk", "set without ssid")
		}
		if msg := checkPSK(i.PSK); msg != "" {
			p.addf(path+".psk", "%s", msg)
		}
	}
	if i.PMK != "" {
		switch {
		case i.PSK != "":
			p.addf(path+".pmk", "set either psk or pmk, not both")
		case i.SSID == "":
			p.addf(path+".pmk", "set without ssid (the PMK is derived from the SSID)")
		}
		if !isHex(i.PMK, 64) {
			p.addf(path+".pmk", "must be 64 hex digits (%d characters given), e.g. the psk= line of `wpa_passphrase SSID PASSPHRASE`", len(i.PMK))
		}
	}
	if i.Country != "" {
		if i.SSID == "" {
			p.addf(path+".country", "set without ssid")
		}
		if msg := checkCountry(i.Country); msg != "" {
			p.addf(path+".country", "%s", msg)
		}
	}
	switch {
	case i.Metric < 0 || int64(i.Metric) > maxMetric:
		p.addf(path+".metric", "%d is not a route metric; use 1 to %d (default %d)", i.Metric, int64(maxMetric), DefaultWlanMetric)
	case i.Metric != 0 && !i.Gateway.IsValid():
		p.addf(path+".metric", "is the default route's metric; set gateway too")
	}
}

// checkPSK checks a WPA pre-shared key: a passphrase of 8 to 63 printable
// ASCII characters, or 64 hex digits. The key itself is never echoed.
func checkPSK(psk string) string {
	if len(psk) == 64 {
		if !isHex(psk, 64) {
			return "a 64-character psk must be hex digits (a passphrase has 8 to 63 characters)"
		}
		return ""
	}
	if len(psk) < 8 || len(psk) > 63 {
		return fmt.Sprintf("is %d characters long; a passphrase has 8 to 63 (or 64 hex digits)", len(psk))
	}
	for _, c := range psk {
		if c < 0x20 || c > 0x7e {
			return "a passphrase may only hold printable ASCII characters"
		}
	}
	return ""
}

// checkCountry checks an ISO 3166-1 alpha-2 country code, or 00 (world).
func checkCountry(c string) string {
	if c == DefaultCountry {
		return ""
	}
	if len(c) == 2 && c[0] >= 'a' && c[0] <= 'z' && c[1] >= 'a' && c[1] <= 'z' {
		return fmt.Sprintf("%q must be upper-case (%q)", c, strings.ToUpper(c))
	}
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return fmt.Sprintf("%q is not a country code; use two letters like DE or US (ISO 3166-1), or 00 for the world domain", c)
	}
	return ""
}

// isHex reports whether s is n hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
