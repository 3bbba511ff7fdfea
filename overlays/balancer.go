package overlays

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Balancer configures the load balancer on lbmaster and lbbackup nodes.
//
// It can express the HAProxy configurations of the seeds: a frontend bound
// to a port in mode http, one backend of servers with "balance roundrobin"
// and "check inter 500 fall 3 rise 2", and a password-protected stats page
// on port 1936 that hides the version:
//
//	balancer:
//	  port: 80
//	  mode: http
//	  algorithm: roundrobin
//	  check: {interval: 500ms, fall: 3, rise: 2}
//	  backends:
//	    - {name: web1, address: "192.168.1.100:80"}
//	    - {name: web2, address: "192.168.1.101:80"}
//	  stats: {port: 1936, user: admin, password_hash: "pbkdf2-sha256$..."}
//
// Every field is optional except the backends; zero means the default named
// in the field's comment.
type Balancer struct {
	// Port is the TCP port the balancer listens on; 0 means 80.
	Port int `yaml:"port,omitempty"`
	// Bind is the address to listen on; unset means every address of the
	// node (which includes the VIP once it is added).
	Bind netip.Addr `yaml:"bind,omitempty"`
	// Mode is "http" (reverse proxy; the default) or "tcp" (plain L4 proxy).
	Mode string `yaml:"mode,omitempty"`
	// Algorithm picks a backend for each request (http) or connection (tcp):
	// "roundrobin" (the default, honouring weights), "leastconn", "source"
	// (client IP hash), "uri" (path hash, see URILen and URIDepth),
	// "url_param" (hash of the query parameter HashParam) or "hdr" (hash of
	// the request header HashHeader). The hashes are consistent: a backend
	// going down moves only its own share. A request without the hashed
	// parameter or header falls back to roundrobin. uri, url_param and hdr
	// need mode http.
	Algorithm string `yaml:"algorithm,omitempty"`
	// HashHeader is the header hashed by algorithm hdr, e.g. Host.
	HashHeader string `yaml:"hash_header,omitempty"`
	// HashDomainOnly makes algorithm hdr hash only the most significant
	// label of a host name (for www.example.org, "example"), like HAProxy's
	// hdr(Host) use_domain_only.
	HashDomainOnly bool `yaml:"hash_domain_only,omitempty"`
	// HashParam is the query parameter hashed by algorithm url_param.
	HashParam string `yaml:"hash_param,omitempty"`
	// URILen limits algorithm uri to the first URILen characters of the
	// path; 0 means the whole path.
	URILen int `yaml:"uri_len,omitempty"`
	// URIDepth limits algorithm uri to the first URIDepth directories of
	// the path; 0 means all.
	URIDepth int `yaml:"uri_depth,omitempty"`
	// Backends are the servers traffic is spread over.
	Backends []Backend `yaml:"backends"`
	// Check configures the active health checks of every backend.
	Check Check `yaml:"check,omitempty"`
	// Retries is how many times a request (or connection) that could not
	// connect to its backend is tried on another one; unset means 1.
	Retries *int `yaml:"retries,omitempty"`
	// ErrorLimit is how many consecutive failed requests (connection
	// refused, reset or timed out) mark a backend down until its health
	// check passes again; 0 means 5, -1 turns passive detection off.
	ErrorLimit int `yaml:"error_limit,omitempty"`
	// Forwarded chooses the headers telling backends about the client in
	// mode http: "xff" (X-Forwarded-For, -Host and -Proto; the default),
	// "rfc7239" (Forwarded), "both" or "none".
	Forwarded string `yaml:"forwarded,omitempty"`
	// SendProxyV2 sends a PROXY protocol version 2 header naming the client
	// at the start of every backend connection. In mode http each client
	// connection then gets its own backend connections.
	SendProxyV2 bool `yaml:"send_proxy_v2,omitempty"`
	// Cookie turns on cookie-based session persistence (mode http only).
	Cookie *Cookie `yaml:"cookie,omitempty"`
	// Stats serves the status page and Prometheus metrics; nil means off.
	Stats *Stats `yaml:"stats,omitempty"`
	// Timeouts bound every wait of the balancer.
	Timeouts Timeouts `yaml:"timeouts,omitempty"`
	// Limits bound connections and request sizes.
	Limits Limits `yaml:"limits,omitempty"`
	// TLS terminates TLS on a second port (mode http only); nil means off.
	TLS *TLS `yaml:"tls,omitempty"`
}

// Backend is one server behind the balancer.
type Backend struct {
	// Name is a label for logs, stats and persistence cookies, usually the
	// backend's hostname. Names are unique.
	Name string `yaml:"name"`
	// Address is host:port; host is an IP address or a name resolved when
	// connecting.
	Address string `yaml:"address"`
	// Weight is the backend's share relative to the others, 1..256; 0 means 1.
	Weight int `yaml:"weight,omitempty"`
	// Backup backends get traffic only while every other backend is down.
	Backup bool `yaml:"backup,omitempty"`
	// Drain stops new requests to the backend; requests in flight finish.
	Drain bool `yaml:"drain,omitempty"`
	// MaxConn is the most requests (http) or connections (tcp) sent to the
	// backend at once; more wait in a queue. 0 means no limit.
	MaxConn int `yaml:"max_conn,omitempty"`
	// NoCheck turns the active health check of this backend off.
	NoCheck bool `yaml:"no_check,omitempty"`
}

// Check configures active health checks, like HAProxy's "check inter fall rise".
type Check struct {
	// Type is "http" (GET Path, a 2xx or 3xx answer is healthy), "tcp" (a
	// connection is healthy) or "none"; "" means http in mode http and tcp
	// in mode tcp.
	Type string `yaml:"type,omitempty"`
	// Path is the URL path of http checks; "" means "/".
	Path string `yaml:"path,omitempty"`
	// Host is the Host header of http checks; "" means the backend address.
	Host string `yaml:"host,omitempty"`
	// Interval is the time between two checks of a backend; 0 means 2s.
	Interval Duration `yaml:"interval,omitempty"`
	// Timeout bounds one check; 0 means Interval (at most 2s).
	Timeout Duration `yaml:"timeout,omitempty"`
	// Fall is how many failed checks in a row mark a backend down; 0 means 3.
	Fall int `yaml:"fall,omitempty"`
	// Rise is how many passed checks in a row mark it up again; 0 means 2.
	Rise int `yaml:"rise,omitempty"`
}

// Cookie configures session persistence like HAProxy's "cookie NAME insert"
// or "cookie NAME prefix". The cookie's value is the backend's Name.
type Cookie struct {
	// Name is the cookie's name; "" means SERVERID.
	Name string `yaml:"name,omitempty"`
	// Mode is "insert" (the balancer adds its own cookie; the default) or
	// "prefix" (it prefixes the application's cookie with "backend~").
	Mode string `yaml:"mode,omitempty"`
}

// Stats configures the status page, which shows every backend's state,
// checks, requests, errors and response times as HTML and, under /metrics,
// as Prometheus text. It never shows the software's version.
type Stats struct {
	// Port is the page's TCP port; 0 means 1936.
	Port int `yaml:"port,omitempty"`
	// Bind is the address to listen on; unset means every address.
	Bind netip.Addr `yaml:"bind,omitempty"`
	// Path is where the page is served, like HAProxy's "stats uri"; ""
	// means "/". The metrics are always at /metrics.
	Path string `yaml:"path,omitempty"`
	// User is the HTTP basic-auth user name.
	User string `yaml:"user"`
	// PasswordHash is the password as "pbkdf2-sha256$ITERATIONS$SALT$HASH"
	// (salt and hash in unpadded base64), as made by balancer.HashPassword.
	PasswordHash string `yaml:"password_hash"`
}

// Timeouts bound the waits of the balancer. Zero means the default named.
type Timeouts struct {
	// Connect bounds connecting to a backend; 0 means 5s.
	Connect Duration `yaml:"connect,omitempty"`
	// Client is the longest a client may stay silent while the balancer
	// waits for it (request headers and body, tcp data); 0 means 30s.
	Client Duration `yaml:"client,omitempty"`
	// Server is the longest a backend may stay silent while the balancer
	// waits for it (response headers and body, tcp data); 0 means 30s.
	Server Duration `yaml:"server,omitempty"`
	// Queue is the longest a request waits for a backend below MaxConn;
	// 0 means Connect.
	Queue Duration `yaml:"queue,omitempty"`
	// KeepAlive is how long an idle client connection is kept; 0 means 60s.
	KeepAlive Duration `yaml:"keep_alive,omitempty"`
	// Grace is how long a stop waits for requests in flight; 0 means 10s.
	Grace Duration `yaml:"grace,omitempty"`
}

// Limits bound what clients may send. Zero means the default named.
type Limits struct {
	// MaxConn is the most client connections at once; 0 means 10000.
	MaxConn int `yaml:"max_conn,omitempty"`
	// MaxHeaderBytes bounds a request's line and headers; 0 means 16 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes,omitempty"`
	// MaxBodyBytes bounds a request's body; 0 means no limit.
	MaxBodyBytes int64 `yaml:"max_body_bytes,omitempty"`
}

// TLS configures TLS termination in mode http; backends get plain HTTP.
type TLS struct {
	// Port is the TLS port; 0 means 443.
	Port int `yaml:"port,omitempty"`
	// Certs are certificate and key files on the data partition. The
	// certificate is chosen by the client's server name (SNI); the first
	// one is the default.
	Certs []Cert `yaml:"certs"`
	// NoHTTP2 turns HTTP/2 to clients off.
	NoHTTP2 bool `yaml:"no_http2,omitempty"`
}

// Cert names a PEM certificate chain and its PEM private key.
type Cert struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Balancer modes, algorithms and other enumerations.
const (
	BalancerModeHTTP = "http"
	BalancerModeTCP  = "tcp"
)

// Defaults of the balancer section.
const (
	DefaultBalancerPort = 80
	DefaultStatsPort    = 1936
	DefaultTLSPort      = 443
)

var (
	balancerAlgorithms = []string{"roundrobin", "leastconn", "source", "uri", "url_param", "hdr"}
	forwardedModes     = []string{"xff", "rfc7239", "both", "none"}
	checkTypes         = []string{"http", "tcp", "none"}
	cookieModes        = []string{"insert", "prefix"}
)

// PortOrDefault returns b.Port, or DefaultBalancerPort when unset.
func (b *Balancer) PortOrDefault() int {
	if b == nil || b.Port == 0 {
		return DefaultBalancerPort
	}
	return b.Port
}

// ModeOrDefault returns b.Mode, or BalancerModeHTTP when unset.
func (b *Balancer) ModeOrDefault() string {
	if b == nil || b.Mode == "" {
		return BalancerModeHTTP
	}
	return b.Mode
}

// RetriesOrDefault returns *b.Retries, or 1 when unset.
func (b *Balancer) RetriesOrDefault() int {
	if b == nil || b.Retries == nil {
		return 1
	}
	return *b.Retries
}

func balOneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func balValidPort(p int) bool { return p >= 1 && p <= 65535 }

func (b *Balancer) validate(p *problems, path string, n *Node) {
	if b == nil {
		return
	}
	f := func(field string) string { return path + "." + field }
	if b.Port != 0 && !balValidPort(b.Port) {
		p.addf(f("port"), "%d is not a TCP port (1..65535)", b.Port)
	}
	if b.Bind.IsValid() && b.Bind.Zone() != "" {
		p.addf(f("bind"), "%s: zones are not supported", b.Bind)
	}
	mode := b.ModeOrDefault()
	if !balOneOf(mode, []string{BalancerModeHTTP, BalancerModeTCP}) {
		p.addf(f("mode"), "%q is not http or tcp", b.Mode)
	}
	b.validateAlgorithm(p, path, mode)
	if b.Retries != nil && (*b.Retries < 0 || *b.Retries > 3) {
		p.addf(f("retries"), "%d is out of range 0..3", *b.Retries)
	}
	if b.ErrorLimit < -1 {
		p.addf(f("error_limit"), "%d: use -1 to turn passive checks off, or a positive count", b.ErrorLimit)
	}
	if b.Forwarded != "" && !balOneOf(b.Forwarded, forwardedModes) {
		p.addf(f("forwarded"), "%q is not one of %s", b.Forwarded, strings.Join(forwardedModes, ", "))
	}
	if b.Forwarded != "" && mode == BalancerModeTCP {
		p.addf(f("forwarded"), "needs mode http (use send_proxy_v2 in mode tcp)")
	}
	b.validateBackends(p, path)
	b.Check.validate(p, f("check"), mode)
	if c := b.Cookie; c != nil {
		if mode != BalancerModeHTTP {
			p.addf(f("cookie"), "needs mode http")
		}
		if c.Name != "" && !balValidToken(c.Name) {
			p.addf(f("cookie.name"), "%q is not a valid cookie name", c.Name)
		}
		if c.Mode != "" && !balOneOf(c.Mode, cookieModes) {
			p.addf(f("cookie.mode"), "%q is not insert or prefix", c.Mode)
		}
	}
	ports := map[int]string{b.PortOrDefault(): f("port")}
	if s := b.Stats; s != nil {
		port := s.Port
		if port == 0 {
			port = DefaultStatsPort
		}
		if s.Port != 0 && !balValidPort(s.Port) {
			p.addf(f("stats.port"), "%d is not a TCP port (1..65535)", s.Port)
		} else if other, dup := ports[port]; dup {
			p.addf(f("stats.port"), "%d is already used by %s", port, other)
		}
		ports[port] = f("stats.port")
		if s.Path != "" && (!strings.HasPrefix(s.Path, "/") || strings.ContainsAny(s.Path, " ?#\r\n") || s.Path == "/metrics") {
			p.addf(f("stats.path"), "%q must start with /, hold no spaces, ? or #, and not be /metrics", s.Path)
		}
		if s.User == "" || strings.ContainsAny(s.User, ":\r\n") {
			p.addf(f("stats.user"), "must be set and contain no colon")
		}
		if err := CheckPasswordHashFormat(s.PasswordHash); err != nil {
			p.addf(f("stats.password_hash"), "%v", err)
		}
	}
	b.Timeouts.validate(p, f("timeouts"))
	b.Limits.validate(p, f("limits"))
	if t := b.TLS; t != nil {
		if mode != BalancerModeHTTP {
			p.addf(f("tls"), "needs mode http")
		}
		port := t.Port
		if port == 0 {
			port = DefaultTLSPort
		}
		if t.Port != 0 && !balValidPort(t.Port) {
			p.addf(f("tls.port"), "%d is not a TCP port (1..65535)", t.Port)
		} else if other, dup := ports[port]; dup {
			p.addf(f("tls.port"), "%d is already used by %s", port, other)
		}
		if len(t.Certs) == 0 {
			p.addf(f("tls.certs"), "needs at least one certificate")
		}
		for i, c := range t.Certs {
			cf := fmt.Sprintf("%s.tls.certs[%d]", path, i)
			if !filepath.IsAbs(c.Cert) {
				p.addf(cf+".cert", "%q must be an absolute path", c.Cert)
			}
			if !filepath.IsAbs(c.Key) {
				p.addf(cf+".key", "%q must be an absolute path", c.Key)
			}
		}
	}
}

func (b *Balancer) validateAlgorithm(p *problems, path, mode string) {
	f := func(field string) string { return path + "." + field }
	alg := b.Algorithm
	if alg == "" {
		alg = "roundrobin"
	}
	if !balOneOf(alg, balancerAlgorithms) {
		p.addf(f("algorithm"), "%q is not one of %s", b.Algorithm, strings.Join(balancerAlgorithms, ", "))
		return
	}
	if mode == BalancerModeTCP && (alg == "uri" || alg == "url_param" || alg == "hdr") {
		p.addf(f("algorithm"), "%s needs mode http", alg)
	}
	switch {
	case alg == "hdr" && !balValidToken(b.HashHeader):
		p.addf(f("hash_header"), "algorithm hdr needs a header name")
	case alg != "hdr" && b.HashHeader != "":
		p.addf(f("hash_header"), "is only used by algorithm hdr")
	}
	if b.HashDomainOnly && alg != "hdr" {
		p.addf(f("hash_domain_only"), "is only used by algorithm hdr")
	}
	switch {
	case alg == "url_param" && b.HashParam == "":
		p.addf(f("hash_param"), "algorithm url_param needs a parameter name")
	case alg != "url_param" && b.HashParam != "":
		p.addf(f("hash_param"), "is only used by algorithm url_param")
	}
	if b.URILen < 0 || (b.URILen != 0 && alg != "uri") {
		p.addf(f("uri_len"), "must be positive and is only used by algorithm uri")
	}
	if b.URIDepth < 0 || (b.URIDepth != 0 && alg != "uri") {
		p.addf(f("uri_depth"), "must be positive and is only used by algorithm uri")
	}
}

func (b *Balancer) validateBackends(p *problems, path string) {
	if len(b.Backends) == 0 {
		p.addf(path+".backends", "needs at least one backend")
		return
	}
	names := map[string]int{}
	primaries := 0
	for i, be := range b.Backends {
		bf := fmt.Sprintf("%s.backends[%d]", path, i)
		switch {
		case be.Name == "":
			p.addf(bf+".name", "must be set")
		case !balValidToken(be.Name):
			p.addf(bf+".name", "%q may hold only letters, digits and -._", be.Name)
		default:
			if j, dup := names[be.Name]; dup {
				p.addf(bf+".name", "%q is also the name of backends[%d]", be.Name, j)
			}
			names[be.Name] = i
		}
		if err := balCheckHostPort(be.Address); err != nil {
			p.addf(bf+".address", "%v", err)
		}
		if be.Weight < 0 || be.Weight > 256 {
			p.addf(bf+".weight", "%d is out of range 1..256", be.Weight)
		}
		if be.MaxConn < 0 {
			p.addf(bf+".max_conn", "%d must not be negative", be.MaxConn)
		}
		if !be.Backup {
			primaries++
		}
	}
	if primaries == 0 {
		p.addf(path+".backends", "every backend is a backup; at least one must not be")
	}
}

func (c *Check) validate(p *problems, path, mode string) {
	if c.Type != "" && !balOneOf(c.Type, checkTypes) {
		p.addf(path+".type", "%q is not http, tcp or none", c.Type)
	}
	if c.Path != "" && (!strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \r\n")) {
		p.addf(path+".path", "%q must start with / and hold no spaces", c.Path)
	}
	if strings.ContainsAny(c.Host, " \r\n/") {
		p.addf(path+".host", "%q is not a host name", c.Host)
	}
	if c.Interval.Duration != 0 && (c.Interval.Duration < 10*time.Millisecond || c.Interval.Duration > time.Hour) {
		p.addf(path+".interval", "%s is out of range 10ms..1h", c.Interval.Duration)
	}
	if c.Timeout.Duration < 0 || c.Timeout.Duration > time.Minute {
		p.addf(path+".timeout", "%s is out of range 0..1m", c.Timeout.Duration)
	}
	if c.Fall < 0 || c.Fall > 100 {
		p.addf(path+".fall", "%d is out of range 1..100", c.Fall)
	}
	if c.Rise < 0 || c.Rise > 100 {
		p.addf(path+".rise", "%d is out of range 1..100", c.Rise)
	}
}

func (t *Timeouts) validate(p *problems, path string) {
	for _, d := range []struct {
		name string
		v    Duration
	}{{"connect", t.Connect}, {"client", t.Client}, {"server", t.Server}, {"queue", t.Queue}, {"keep_alive", t.KeepAlive}, {"grace", t.Grace}} {
		if d.v.Duration < 0 || d.v.Duration > 24*time.Hour {
			p.addf(path+"."+d.name, "%s is out of range 0..24h", d.v.Duration)
		}
	}
}

func (l *Limits) validate(p *problems, path string) {
	if l.MaxConn < 0 || l.MaxConn > 1_000_000 {
		p.addf(path+".max_conn", "%d is out of range 0..1000000", l.MaxConn)
	}
	if l.MaxHeaderBytes != 0 && (l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20) {
		p.addf(path+".max_header_bytes", "%d is out of range 1024..1048576", l.MaxHeaderBytes)
	}
	if l.MaxBodyBytes < 0 {
		p.addf(path+".max_body_bytes", "%d must not be negative", l.MaxBodyBytes)
	}
}

// balCheckHostPort reports whether s is host:port with a non-empty host (an IP
// address or a DNS name) and a port in 1..65535.
func balCheckHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || !balValidPort(n) {
		return fmt.Errorf("%q: port %q is not 1..65535", s, port)
	}
	if host == "" {
		return fmt.Errorf("%q: host is empty", s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q: %q is not an IP address or host name", s, host)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q: %q is not an IP address or host name", s, host)
			}
		}
	}
	return nil
}

// balValidToken reports whether s is a non-empty HTTP token of letters,
// digits and -._ (a safe subset of RFC 9110's tchar).
func balValidToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// CheckPasswordHashFormat reports whether h looks like
// "pbkdf2-sha256$ITERATIONS$SALT$HASH" with at least 10000 iterations. The
// balancer checks the base64 parts when it starts.
func CheckPasswordHashFormat(h string) error {
	parts := strings.Split(h, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" || parts[2] == "" || parts[3] == "" {
		return fmt.Errorf("must be pbkdf2-sha256$ITERATIONS$SALT$HASH (never the password itself)")
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 10000 || n > 10_000_000 {
		return fmt.Errorf("iterations %q out of range 10000..10000000", parts[1])
	}
	return nil
}
