package balancer

import (
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Addr: ":80", Backends: []BackendConfig{{Name: "a", Address: "h:1"}}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeHTTP || c.Algorithm != "roundrobin" || c.Check.Type != "http" || c.Check.Path != "/" ||
		c.Check.Interval != 2*time.Second || c.Check.Timeout != 2*time.Second || c.Check.Fall != 3 || c.Check.Rise != 2 ||
		c.Retries != 1 || c.ErrorLimit != 5 || c.Forwarded != "xff" || c.ConnectTimeout != 5*time.Second ||
		c.QueueTimeout != 5*time.Second || c.MaxHeaderBytes != 16<<10 || c.Backends[0].Weight != 1 {
		t.Errorf("defaults: %+v", c)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no backends"},
		{Config{Mode: "udp", Backends: []BackendConfig{{Name: "a", Address: "h:1"}}}, "mode"},
		{Config{Algorithm: "random", Backends: []BackendConfig{{Name: "a", Address: "h:1"}}}, "algorithm"},
		{Config{Mode: ModeTCP, Algorithm: "uri", Backends: []BackendConfig{{Name: "a", Address: "h:1"}}}, "mode http"},
		{Config{Algorithm: "hdr", Backends: []BackendConfig{{Name: "a", Address: "h:1"}}}, "header"},
		{Config{Backends: []BackendConfig{{Name: "a", Address: "h:1"}, {Name: "a", Address: "h:2"}}}, "not unique"},
		{Config{Backends: []BackendConfig{{Name: "a", Address: "h"}}}, "address"},
		{Config{Backends: []BackendConfig{{Name: "a", Address: "h:1", Backup: true}}}, "backup"},
		{Config{Backends: []BackendConfig{{Name: "a", Address: "h:1"}}, Stats: &StatsConfig{PasswordHash: "x"}}, "password"},
		{Config{Mode: ModeTCP, Backends: []BackendConfig{{Name: "a", Address: "h:1"}}, Cookie: &CookieConfig{}}, "cookie"},
	} {
		if _, err := tt.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestConfigFromOverlay(t *testing.T) {
	zero := 0
	b := &overlays.Balancer{
		Port: 8080, Mode: "http", Algorithm: "uri", URILen: 5, Retries: &zero,
		Backends: []overlays.Backend{{Name: "a", Address: "h:1", Weight: 3, Backup: true, Drain: true, MaxConn: 9, NoCheck: true}, {Name: "b", Address: "h:2"}},
		Cookie:   &overlays.Cookie{Mode: "prefix", Name: "JSESSIONID"},
		Stats:    &overlays.Stats{User: "u", PasswordHash: "p"},
		TLS:      &overlays.TLS{Certs: []overlays.Cert{{Cert: "/c", Key: "/k"}}},
		Timeouts: overlays.Timeouts{Server: overlays.Duration{Duration: time.Second}},
	}
	c := ConfigFromOverlay(b)
	if c.Addr != ":8080" || c.Retries != -1 || c.URILen != 5 || c.ServerTimeout != time.Second ||
		c.Backends[0] != (BackendConfig{Name: "a", Address: "h:1", Weight: 3, Backup: true, Drain: true, MaxConn: 9, NoCheck: true}) ||
		!c.Cookie.Prefix || c.Stats.Addr != ":1936" || c.TLS.Addr != ":443" {
		t.Errorf("%+v", c)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := overlays.CheckPasswordHashFormat(h); err != nil {
		t.Errorf("the overlay refuses HashPassword's output %q: %v", h, err)
	}
	a, err := newAuthenticator("admin", h)
	if err != nil {
		t.Fatal(err)
	}
	a.interval = time.Hour // PBKDF2 under the race detector takes longer than 100 ms
	if a.check("admin", "guess1") || a.check("admin", "correct horse") {
		t.Error("a second PBKDF2 within the interval was evaluated")
	}
	a.interval = 0
	for _, tt := range []struct {
		user, pass string
		ok         bool
	}{{"admin", "correct horse", true}, {"admin", "correct horse", true}, {"admin", "wrong", false}, {"Admin", "correct horse", false}, {"", "", false}} {
		if got := a.check(tt.user, tt.pass); got != tt.ok {
			t.Errorf("check(%q, %q) = %v", tt.user, tt.pass, got)
		}
	}
	for _, bad := range []string{"", "sha256$x", "pbkdf2-sha256$10$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pbkdf2-sha256$100000$!!$aGFzaA"} {
		if _, err := parsePasswordHash(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
