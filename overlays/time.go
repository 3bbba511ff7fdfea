package overlays

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Time configures the SNTP client that sets the node's clock (a Raspberry
// Pi has no battery-backed clock and boots in 1970). Until one server has
// answered, the status page says the time is not trusted. Every field is
// optional:
//
//	time:
//	  servers: [192.168.1.1, "ntp.example.org", "10.0.0.5:1123"]
//	  interval: 15m
type Time struct {
	// Disabled turns the SNTP client off; the time is then never trusted.
	Disabled bool `yaml:"disabled,omitempty"`
	// Servers are NTP servers as "host" or "host:port" (port 123 by
	// default); host is an IPv4 address, or a name resolved through dns.
	// Empty means eth0's gateway (most home routers answer NTP).
	Servers []string `yaml:"servers,omitempty"`
	// Interval is the time between two synchronisations once the clock is
	// set, 1m..24h; 0 means DefaultTimeInterval.
	Interval Duration `yaml:"interval,omitempty"`
}

// Defaults of the time section.
const (
	DefaultTimeInterval = 15 * time.Minute
	DefaultNTPPort      = 123
)

// TimeServersOrDefault returns the SNTP servers as host:port: the time
// section's, or eth0's gateway, or none (when disabled or there is no
// gateway).
func (n *Node) TimeServersOrDefault() []string {
	t := n.Time
	if t != nil && t.Disabled {
		return nil
	}
	var out []string
	if t != nil {
		for _, s := range t.Servers {
			host, port, err := splitServer(s)
			if err == nil {
				out = append(out, net.JoinHostPort(host, strconv.Itoa(port)))
			}
		}
	}
	if len(out) == 0 {
		if e := n.Interfaces.Eth0; e != nil && e.Gateway.IsValid() {
			out = append(out, net.JoinHostPort(e.Gateway.String(), strconv.Itoa(DefaultNTPPort)))
		}
	}
	return out
}

// TimeIntervalOrDefault returns the time section's interval, or
// DefaultTimeInterval.
func (n *Node) TimeIntervalOrDefault() time.Duration {
	if n.Time == nil || n.Time.Interval.Duration == 0 {
		return DefaultTimeInterval
	}
	return n.Time.Interval.Duration
}

// splitServer splits "host" or "host:port" and checks both parts.
func splitServer(s string) (host string, port int, err error) {
	host, port = s, DefaultNTPPort
	if h, p, serr := net.SplitHostPort(s); serr == nil {
		host = h
		v, perr := strconv.Atoi(p)
		if perr != nil || !validPort(v) {
			return "", 0, fmt.Errorf("%q: bad port %q; use 1 to 65535", s, p)
		}
		port = v
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", s)
	}
	if a, aerr := netip.ParseAddr(host); aerr == nil {
		if msg := checkUnicast4(a); msg != "" {
			return "", 0, fmt.Errorf("%s", msg)
		}
		return host, port, nil
	}
	if msg := checkHostname(host); msg != "" {
		return "", 0, fmt.Errorf("not an IPv4 address or a host name: %s", msg)
	}
	return host, port, nil
}

// validateTime checks the time section, if any.
func (n *Node) validateTime(p *problems) {
	t := n.Time
	if t == nil {
		return
	}
	seen := map[string]int{}
	for i, s := range t.Servers {
		path := fmt.Sprintf("time.servers[%d]", i)
		host, port, err := splitServer(s)
		if err != nil {
			p.addf(path, "%v", err)
			continue
		}
		key := net.JoinHostPort(host, strconv.Itoa(port))
		if j, dup := seen[key]; dup {
			p.addf(path, "%s is listed twice (also servers[%d])", s, j)
			continue
		}
		seen[key] = i
		if _, aerr := netip.ParseAddr(host); aerr != nil && len(n.DNS) == 0 {
			p.addf(path, "%q is a name, but the node has no dns servers to resolve it; give an address or add dns", host)
		}
	}
	if d := t.Interval.Duration; d != 0 && (d < time.Minute || d > 24*time.Hour) {
		p.addf("time.interval", "%s is out of range 1m..24h", d)
	}
	if !t.Disabled && len(t.Servers) == 0 && (n.Interfaces.Eth0 == nil || !n.Interfaces.Eth0.Gateway.IsValid()) {
		p.addf("time.servers", "no server: list one, or give eth0 a gateway (the default server)")
	}
}
