package overlays

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

const wlanNode = webNode + `  wlan0:
    address: 192.168.1.20/24
    gateway: 192.168.1.1
    metric: 700
    ssid: home network
    psk: "correct horse battery"
    country: DE
`

func TestWlanValid(t *testing.T) {
	n, err := Parse("web01.yaml", []byte(wlanNode))
	if err != nil {
		t.Fatal(err)
	}
	w := n.Interfaces.Wlan0
	if !w.WiFi() || !w.Secured() || w.SSID != "home network" || w.CountryOrDefault() != "DE" || w.MetricOrDefault() != 700 {
		t.Errorf("got %+v", w)
	}
	open, err := Parse("web01.yaml", []byte(webNode+"  wlan0: {address: 192.168.1.20/24, ssid: cafe}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w = open.Interfaces.Wlan0
	if !w.WiFi() || w.Secured() || w.CountryOrDefault() != DefaultCountry || w.MetricOrDefault() != DefaultWlanMetric {
		t.Errorf("open network: got %+v", w)
	}
	pmk, err := Parse("web01.yaml", []byte(webNode+"  wlan0: {address: 192.168.1.20/24, ssid: IEEE, pmk: f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e, country: \"00\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !pmk.Interfaces.Wlan0.Secured() {
		t.Errorf("pmk: not secured")
	}
	plain, err := Parse("web01.yaml", []byte(webNode+"  wlan0: {address: 192.168.1.20/24}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Interfaces.Wlan0.WiFi() || plain.Interfaces.Eth0.WiFi() {
		t.Errorf("no ssid: WiFi() is true")
	}
	// Marshal writes the section back so that Parse reads the same node.
	out, err := Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("again.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if *back.Interfaces.Wlan0 != *n.Interfaces.Wlan0 {
		t.Errorf("round trip: %+v, want %+v", back.Interfaces.Wlan0, n.Interfaces.Wlan0)
	}
}

func TestWlanProblems(t *testing.T) {
	const secret = "s3cr3t-passphrase"
	tests := []struct {
		name, yaml string
		line       int
		field, msg string
	}{
		{"pmk too short", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: home, pmk: abcdef}
`, 8, "interfaces.wlan0.pmk", "must be 64 hex digits (6 characters given)"},
		{"pmk not hex", webNode + `  wlan0:
    address: 192.168.1.20/24
    ssid: home
    pmk: ` + strings.Repeat("g", 64) + `
`, 11, "interfaces.wlan0.pmk", "64 hex digits"},
		{"psk and pmk", webNode + `  wlan0:
    address: 192.168.1.20/24
    ssid: home
    psk: ` + secret + `
    pmk: ` + strings.Repeat("a", 64) + `
`, 12, "interfaces.wlan0.pmk", "either psk or pmk"},
		{"pmk without ssid", webNode + `  wlan0: {address: 192.168.1.20/24, pmk: ` + strings.Repeat("a", 64) + `}
`, 8, "interfaces.wlan0.pmk", "without ssid"},
		{"psk not ascii", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: home, psk: "pässphrase"}
`, 8, "interfaces.wlan0.psk", "printable ASCII"},
		{"psk too long", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: home, psk: ` + strings.Repeat("x", 65) + `}
`, 8, "interfaces.wlan0.psk", "65 characters long"},
		{"ssid too long", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: ` + strings.Repeat("x", 33) + `}
`, 8, "interfaces.wlan0.ssid", "at most 32"},
		{"country lower case", webNode + `  wlan0:
    address: 192.168.1.20/24
    ssid: home
    country: de
`, 11, "interfaces.wlan0.country", `must be upper-case ("DE")`},
		{"country three letters", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: home, country: DEU}
`, 8, "interfaces.wlan0.country", "not a country code"},
		{"country without ssid", webNode + `  wlan0: {address: 192.168.1.20/24, country: DE}
`, 8, "interfaces.wlan0.country", "without ssid"},
		{"metric negative", webNode + `  wlan0: {address: 192.168.1.20/24, gateway: 192.168.1.1, metric: -1}
`, 8, "interfaces.wlan0.metric", "not a route metric"},
		{"metric too large", webNode + `  wlan0:
    address: 192.168.1.20/24
    gateway: 192.168.1.1
    metric: 4294967296
`, 11, "interfaces.wlan0.metric", "not a route metric"},
		{"metric without gateway", webNode + `  wlan0: {address: 192.168.1.20/24, metric: 10}
`, 8, "interfaces.wlan0.metric", "set gateway too"},
		{"metric on eth0", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/24
    gateway: 192.168.1.1
    metric: 5
`, 7, "interfaces.eth0.metric", "only wlan0 takes a metric"},
		{"pmk on eth0", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/24
    pmk: ` + strings.Repeat("a", 64) + `
`, 6, "interfaces.eth0.pmk", "belong on wlan0"},
		{"country on eth0", `hostname: web01
role: web
interfaces:
  eth0: {address: 192.168.1.10/24, country: DE}
`, 4, "interfaces.eth0.country", "belong on wlan0"},
		{"unknown wifi field", webNode + `  wlan0:
    address: 192.168.1.20/24
    ssid: home
    passphrase: ` + secret + `
`, 11, "interfaces.wlan0.passphrase", "unknown field"},
		{"wlan0 without address", webNode + `  wlan0: {ssid: home, psk: ` + secret + `}
`, 8, "interfaces.wlan0.address", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("node.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			wantProblem(t, err, "node.yaml", tt.line, tt.field, tt.msg)
			for _, s := range []string{secret, strings.Repeat("a", 64), strings.Repeat("g", 64), "pässphrase", "abcdef}"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows the secret %q: %v", s, err)
				}
			}
		})
	}
}

// TestWlanLogValue: slog never prints the PSK or PMK of an interface.
func TestWlanLogValue(t *testing.T) {
	n, err := Parse("web01.yaml", []byte(wlanNode))
	if err != nil {
		t.Fatal(err)
	}
	w := *n.Interfaces.Wlan0
	w.PMK = strings.Repeat("ab", 32)
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("wlan0", "config", w, "ptr", &w)
	out := b.String()
	for _, s := range []string{"correct horse battery", w.PMK} {
		if strings.Contains(out, s) {
			t.Errorf("log shows a secret: %s", out)
		}
	}
	if !strings.Contains(out, "config.ssid=\"home network\"") || !strings.Contains(out, "config.psk=********") {
		t.Errorf("log lacks the ssid or the masked psk: %s", out)
	}
}
