package overlays

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimeServers(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
		interval  time.Duration
	}{
		{"default gateway", webNode, []string{"192.168.1.1:123"}, DefaultTimeInterval},
		{"listed", webNode + "time:\n  servers: [192.168.1.2, '10.0.0.5:1123', ntp.example.org]\n  interval: 1h\n",
			[]string{"192.168.1.2:123", "10.0.0.5:1123", "ntp.example.org:123"}, time.Hour},
		{"disabled", webNode + "time: {disabled: true}\n", nil, DefaultTimeInterval},
		{"no gateway", "hostname: a\nrole: web\ninterfaces: {eth0: {address: 10.0.0.2/24}}\n", nil, DefaultTimeInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse("t.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := n.TimeServersOrDefault(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("servers = %q, want %q", got, tt.want)
			}
			if got := n.TimeIntervalOrDefault(); got != tt.interval {
				t.Errorf("interval = %v, want %v", got, tt.interval)
			}
		})
	}
}

func TestTimeProblems(t *testing.T) {
	noGW := "hostname: a\nrole: web\ninterfaces: {eth0: {address: 10.0.0.2/24}}\n"
	tests := []struct {
		name, src  string
		field, msg string
	}{
		{"bad port", webNode + "time: {servers: ['10.0.0.1:0']}\n", "time.servers[0]", "bad port"},
		{"port text", webNode + "time: {servers: ['10.0.0.1:ntp']}\n", "time.servers[0]", "bad port"},
		{"loopback", webNode + "time: {servers: [127.0.0.1]}\n", "time.servers[0]", "loopback"},
		{"bad name", webNode + "time: {servers: ['NTP_server']}\n", "time.servers[0]", "not an IPv4 address or a host name"},
		{"empty host", webNode + "time: {servers: [':123']}\n", "time.servers[0]", "no host"},
		{"twice", webNode + "time: {servers: [10.0.0.1, '10.0.0.1:123']}\n", "time.servers[1]", "listed twice"},
		{"name without dns", noGW + "time: {servers: [ntp.example.org]}\n", "time.servers[0]", "no dns servers"},
		{"interval", webNode + "time: {interval: 5s}\n", "time.interval", "out of range"},
		{"no server", noGW + "time: {interval: 1h}\n", "time.servers", "no server"},
		{"unknown", webNode + "time: {pool: x}\n", "time.pool", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("no error")
			}
			var found bool
			for _, p := range err.(*Error).Problems {
				if p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s: ...%s...; got\n%v", tt.field, tt.msg, err)
			}
		})
	}
}
