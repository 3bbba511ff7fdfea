package balancer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/piimage/piimage/overlays"
)

// Config is the balancer's runtime configuration. Zero fields mean the
// default named in their comment, so a Config needs only Addr and Backends.
// New builds one from a node's overlay; tests build them directly.
type Config struct {
	// Addr is the listening address, e.g. ":80" or "127.0.0.1:0".
	Addr string
	// Mode is ModeHTTP (reverse proxy; "" means this) or ModeTCP.
	Mode string
	// Algorithm is one of roundrobin ("" means this), leastconn, source,
	// uri, url_param or hdr.
	Algorithm string
	// HashHeader is the header hashed by hdr; HashParam the query parameter
	// hashed by url_param; URILen and URIDepth limit what uri hashes.
	HashHeader string
	HashParam  string
	// HashDomainOnly makes hdr hash only a host name's most significant
	// label (HAProxy's use_domain_only).
	HashDomainOnly bool
	URILen         int
	URIDepth       int
	// Backends are the servers; at least one must not be a backup.
	Backends []BackendConfig
	// Check configures active health checks.
	Check CheckConfig
	// Retries is how often a request that could not connect is tried on
	// another backend; 0 means 1, negative means never. A request taken
	// off a backend marked down before it answered (markdown.go) uses one
	// of these tries, at most once.
	Retries int
	// ErrorLimit is how many consecutive failed requests mark a checked
	// backend down; 0 means 5, negative turns passive detection off.
	ErrorLimit int
	// Forwarded is "xff" ("" means this), "rfc7239", "both" or "none".
	Forwarded string
	// SendProxyV2 starts every backend connection with a PROXY v2 header.
	SendProxyV2 bool
	// Cookie turns on session persistence; nil means off.
	Cookie *CookieConfig
	// Stats serves the status page and metrics; nil means off.
	Stats *StatsConfig
	// TLS adds a TLS frontend; nil means off.
	TLS *TLSConfig

	// ConnectTimeout bounds connecting to a backend; 0 means 5s.
	ConnectTimeout time.Duration
	// ClientTimeout bounds each wait for a client: its request head, each
	// read of its body and each write to it (http), or its data (tcp);
	// 0 means 30s.
	ClientTimeout time.Duration
	// ServerTimeout bounds waiting for a backend's response headers and
	// each read of its body (http) or its data (tcp); 0 means 30s.
	ServerTimeout time.Duration
	// QueueTimeout bounds waiting for a backend below its MaxConn; 0 means
	// ConnectTimeout.
	QueueTimeout time.Duration
	// KeepAlive is how long idle client connections are kept; 0 means 60s.
	KeepAlive time.Duration
	// Grace bounds a graceful stop; 0 means 10s.
	Grace time.Duration
	// MaxConn bounds client connections at once; 0 means 10000.
	MaxConn int
	// MaxHeaderBytes bounds a request's line and headers; 0 means 16 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body; 0 means no limit.
	MaxBodyBytes int64

	// NoEventLoop serves plain-HTTP clients with a goroutine per
	// connection, as on systems other than Linux, instead of the Linux
	// event loops; for comparison and as a way back. Read when Run starts.
	NoEventLoop bool
}

// BackendConfig is one backend server.
type BackendConfig struct {
	Name    string // unique label, also the persistence cookie's value
	Address string // host:port
	Weight  int    // 1..256; 0 means 1
	Backup  bool   // used only while no other backend is up
	Drain   bool   // no new requests; requests in flight finish
	MaxConn int    // requests or connections at once; 0 means no limit
	NoCheck bool   // no active health check
}

// CheckConfig configures active health checks.
type CheckConfig struct {
	// Type is "http", "tcp" or "none"; "" means http in mode http, tcp in
	// mode tcp.
	Type string
	// Path and Host are the request of http checks; "" means "/" and the
	// backend's address.
	Path string
	Host string
	// Interval between checks of one backend; 0 means 2s.
	Interval time.Duration
	// Timeout of one check; 0 means Interval, at most 2s.
	Timeout time.Duration
	// Fall failed checks in a row mark a backend down; 0 means 3.
	Fall int
	// Rise passed checks in a row mark it up; 0 means 2.
	Rise int
}

// CookieConfig configures cookie persistence.
type CookieConfig struct {
	// Name of the cookie; "" means SERVERID.
	Name string
	// Prefix prefixes the application's cookie Name with "backend~"
	// instead of inserting a cookie of the balancer's own.
	Prefix bool
}

// StatsConfig configures the stats page.
type StatsConfig struct {
	// Addr is the listening address; "" means ":1936".
	Addr string
	// Path is where the page is served; "" means "/". Metrics are at
	// /metrics.
	Path string
	// User and PasswordHash (see HashPassword) guard the page.
	User         string
	PasswordHash string
}

// TLSConfig configures TLS termination.
type TLSConfig struct {
	// Addr is the listening address; "" means ":443".
	Addr string
	// Certs are PEM files; the certificate is chosen by SNI, the first is
	// the default.
	Certs []CertFiles
	// NoHTTP2 turns HTTP/2 off.
	NoHTTP2 bool
}

// CertFiles names a certificate chain and its key.
type CertFiles struct{ Cert, Key string }

// Modes.
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
)

// ConfigFromOverlay maps a node's balancer section to a Config.
func ConfigFromOverlay(b *overlays.Balancer) Config {
	c := Config{
		Addr:           hostPort(b.Bind, b.PortOrDefault()),
		Mode:           b.ModeOrDefault(),
		Algorithm:      b.Algorithm,
		HashHeader:     b.HashHeader,
		HashParam:      b.HashParam,
		HashDomainOnly: b.HashDomainOnly,
		URILen:         b.URILen,
		URIDepth:       b.URIDepth,
		ErrorLimit:     b.ErrorLimit,
		Forwarded:      b.Forwarded,
		SendProxyV2:    b.SendProxyV2,
		Check: CheckConfig{
			Type: b.Check.Type, Path: b.Check.Path, Host: b.Check.Host,
			Interval: b.Check.Interval.Duration, Timeout: b.Check.Timeout.Duration,
			Fall: b.Check.Fall, Rise: b.Check.Rise,
		},
		ConnectTimeout: b.Timeouts.Connect.Duration,
		ClientTimeout:  b.Timeouts.Client.Duration,
		ServerTimeout:  b.Timeouts.Server.Duration,
		QueueTimeout:   b.Timeouts.Queue.Duration,
		KeepAlive:      b.Timeouts.KeepAlive.Duration,
		Grace:          b.Timeouts.Grace.Duration,
		MaxConn:        b.Limits.MaxConn,
		MaxHeaderBytes: b.Limits.MaxHeaderBytes,
		MaxBodyBytes:   b.Limits.MaxBodyBytes,
	}
	if r := b.RetriesOrDefault(); r == 0 {
		c.Retries = -1
	} else {
		c.Retries = r
	}
	for _, be := range b.Backends {
		c.Backends = append(c.Backends, BackendConfig{
			Name: be.Name, Address: be.Address, Weight: be.Weight, Backup: be.Backup,
			Drain: be.Drain, MaxConn: be.MaxConn, NoCheck: be.NoCheck,
		})
	}
	if ck := b.Cookie; ck != nil {
		c.Cookie = &CookieConfig{Name: ck.Name, Prefix: ck.Mode == "prefix"}
	}
	if s := b.Stats; s != nil {
		port := s.Port
		if port == 0 {
			port = overlays.DefaultStatsPort
		}
		c.Stats = &StatsConfig{Addr: hostPort(s.Bind, port), Path: s.Path, User: s.User, PasswordHash: s.PasswordHash}
	}
	if t := b.TLS; t != nil {
		port := t.Port
		if port == 0 {
			port = overlays.DefaultTLSPort
		}
		tc := &TLSConfig{Addr: hostPort(b.Bind, port), NoHTTP2: t.NoHTTP2}
		for _, cf := range t.Certs {
			tc.Certs = append(tc.Certs, CertFiles{Cert: cf.Cert, Key: cf.Key})
		}
		c.TLS = tc
	}
	return c
}

func hostPort(a netip.Addr, port int) string {
	if !a.IsValid() {
		return ":" + strconv.Itoa(port)
	}
	return net.JoinHostPort(a.String(), strconv.Itoa(port))
}

// withDefaults returns c with every zero field set to its default, or an
// error naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModeHTTP
	}
	if c.Mode != ModeHTTP && c.Mode != ModeTCP {
		return c, fmt.Errorf("mode %q is not http or tcp", c.Mode)
	}
	if c.Algorithm == "" {
		c.Algorithm = "roundrobin"
	}
	switch c.Algorithm {
	case "roundrobin", "leastconn", "source":
	case "uri", "url_param", "hdr":
		if c.Mode != ModeHTTP {
			return c, fmt.Errorf("algorithm %s needs mode http", c.Algorithm)
		}
		if c.Algorithm == "hdr" && c.HashHeader == "" {
			return c, errors.New("algorithm hdr needs a header name")
		}
		if c.Algorithm == "url_param" && c.HashParam == "" {
			return c, errors.New("algorithm url_param needs a parameter name")
		}
	default:
		return c, fmt.Errorf("unknown algorithm %q", c.Algorithm)
	}
	if len(c.Backends) == 0 {
		return c, errors.New("no backends")
	}
	c.Backends = append([]BackendConfig(nil), c.Backends...)
	names := map[string]bool{}
	primaries := 0
	for i := range c.Backends {
		b := &c.Backends[i]
		if b.Name == "" || names[b.Name] {
			return c, fmt.Errorf("backends[%d]: name %q is empty or not unique", i, b.Name)
		}
		names[b.Name] = true
		if _, _, err := net.SplitHostPort(b.Address); err != nil {
			return c, fmt.Errorf("backends[%d] (%s): address: %w", i, b.Name, err)
		}
		if b.Weight == 0 {
			b.Weight = 1
		}
		if b.Weight < 0 || b.Weight > 256 {
			return c, fmt.Errorf("backends[%d] (%s): weight %d out of range 1..256", i, b.Name, b.Weight)
		}
		if !b.Backup {
			primaries++
		}
	}
	if primaries == 0 {
		return c, errors.New("every backend is a backup")
	}
	ck := &c.Check
	if ck.Type == "" {
		ck.Type = c.Mode
	}
	if ck.Type != "http" && ck.Type != "tcp" && ck.Type != "none" {
		return c, fmt.Errorf("check type %q is not http, tcp or none", ck.Type)
	}
	if ck.Path == "" {
		ck.Path = "/"
	}
	ck.Interval = orDuration(ck.Interval, 2*time.Second)
	if ck.Timeout == 0 {
		ck.Timeout = min(ck.Interval, 2*time.Second)
	}
	if ck.Fall <= 0 {
		ck.Fall = 3
	}
	if ck.Rise <= 0 {
		ck.Rise = 2
	}
	if c.Retries == 0 {
		c.Retries = 1
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.ErrorLimit == 0 {
		c.ErrorLimit = 5
	}
	if c.Forwarded == "" {
		c.Forwarded = "xff"
	}
	switch c.Forwarded {
	case "xff", "rfc7239", "both", "none":
	default:
		return c, fmt.Errorf("forwarded %q is not xff, rfc7239, both or none", c.Forwarded)
	}
	if c.Cookie != nil {
		if c.Mode != ModeHTTP {
			return c, errors.New("cookie persistence needs mode http")
		}
		ck := *c.Cookie
		if ck.Name == "" {
			ck.Name = "SERVERID"
		}
		c.Cookie = &ck
	}
	if c.Stats != nil {
		s := *c.Stats
		if s.Addr == "" {
			s.Addr = ":1936"
		}
		if s.Path == "" {
			s.Path = "/"
		}
		if s.Path[0] != '/' || s.Path == "/metrics" {
			return c, fmt.Errorf("stats path %q must start with / and not be /metrics", s.Path)
		}
		if _, err := parsePasswordHash(s.PasswordHash); err != nil {
			return c, fmt.Errorf("stats password hash: %w", err)
		}
		c.Stats = &s
	}
	if c.TLS != nil {
		if c.Mode != ModeHTTP {
			return c, errors.New("tls needs mode http")
		}
		t := *c.TLS
		if t.Addr == "" {
			t.Addr = ":443"
		}
		if len(t.Certs) == 0 {
			return c, errors.New("tls needs at least one certificate")
		}
		c.TLS = &t
	}
	c.ConnectTimeout = orDuration(c.ConnectTimeout, 5*time.Second)
	c.ClientTimeout = orDuration(c.ClientTimeout, 30*time.Second)
	c.ServerTimeout = orDuration(c.ServerTimeout, 30*time.Second)
	c.QueueTimeout = orDuration(c.QueueTimeout, c.ConnectTimeout)
	c.KeepAlive = orDuration(c.KeepAlive, 60*time.Second)
	c.Grace = orDuration(c.Grace, 10*time.Second)
	if c.MaxConn <= 0 {
		c.MaxConn = 10000
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	return c, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// frontendChanges reports which settings of next differ from c that only
// a restart can apply: the listening sockets and the connection limit.
// Timeouts and header limits apply to the next request (the HTTP/2
// server keeps its idle timeout and header limit until a restart).
func (c Config) frontendChanges(next Config) []string {
	var out []string
	if c.Addr != next.Addr {
		out = append(out, "port")
	}
	if c.Mode != next.Mode {
		out = append(out, "mode")
	}
	if (c.TLS == nil) != (next.TLS == nil) || (c.TLS != nil && (c.TLS.Addr != next.TLS.Addr || c.TLS.NoHTTP2 != next.TLS.NoHTTP2)) {
		out = append(out, "tls")
	}
	if (c.Stats == nil) != (next.Stats == nil) || (c.Stats != nil && c.Stats.Addr != next.Stats.Addr) {
		out = append(out, "stats.port")
	}
	if c.MaxConn != next.MaxConn {
		out = append(out, "limits.max_conn")
	}
	return out
}
