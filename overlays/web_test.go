package overlays

import (
	"strings"
	"testing"
)

const webNodeHead = `
hostname: web01
role: web
interfaces:
  eth0: {address: 192.168.1.10/24, gateway: 192.168.1.1}
  wlan0: {address: 192.168.1.20/24}
`

func TestWebValid(t *testing.T) {
	src := webNodeHead + `
web:
  port: 8080
  listen: 192.168.1.20
  root: /data/site
  index: home.html
  listing: true
  show_dotfiles: true
  symlinks_outside_root: true
  not_found_page: /404.html
  whoami_path: /who
  health_path: "off"
  cache_control:
    - {match: "*.css", value: "public, max-age=86400"}
    - {match: /static/, value: "max-age=3600"}
    - {match: "/img/*.png", value: immutable}
  mime_types: {.md: text/markdown}
  access_log: {file: /data/log/access.log}
  tls: {port: 8443, cert: /data/tls/cert.pem, key: /data/tls/key.pem}
  timeouts: {read_header: 5s, idle: 30s, write: 1m}
  max_header_bytes: 4096
`
	n, err := Parse("web.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	w := n.Web
	if w.Listen.String() != "192.168.1.20" || len(w.CacheControl) != 3 || w.TLS.PortOrDefault() != 8443 ||
		w.Timeouts.Write.Duration.String() != "1m0s" || w.AccessLog.File != "/data/log/access.log" {
		t.Errorf("decoded %+v", w)
	}
	// The round trip keeps every field.
	out, err := Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := Parse("out.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(n2.Web.CacheControl) != 3 || n2.Web.TLS.Cert != w.TLS.Cert || n2.Web.MimeTypes[".md"] != "text/markdown" {
		t.Errorf("round trip: %+v", n2.Web)
	}
	if (&WebTLS{}).PortOrDefault() != 443 {
		t.Error("TLS port default")
	}
}

func TestWebProblems(t *testing.T) {
	tests := []struct {
		name, web string
		field     string
		msg       string
	}{
		{"port", "port: 70000", "web.port", "not a port"},
		{"listen not ours", "listen: 192.168.1.99", "web.listen", "not an address of this node (192.168.1.10, 192.168.1.20)"},
		{"listen IPv6", "listen: '::1'", "web.listen", "not an IPv4 address"},
		{"root relative", "root: www", "web.root", "absolute"},
		{"root slash", "root: /", "web.root", "whole system"},
		{"index path", "index: a/index.html", "web.index", "not a file name"},
		{"404 page", "not_found_page: 404.html", "web.not_found_page", "not a path like /404.html"},
		{"whoami", "whoami_path: who", "web.whoami_path", "not a path like /whoami (or off)"},
		{"health with query", "health_path: /h?x", "web.health_path", "not a path"},
		{"same paths", "whoami_path: /x\n  health_path: /x", "web.health_path", "also whoami_path"},
		{"cache match empty", "cache_control: [{value: x}]", "web.cache_control[0].match", "required"},
		{"cache bad pattern", "cache_control: [{match: '[', value: x}]", "web.cache_control[0].match", "not a valid pattern"},
		{"cache relative folder", "cache_control: [{match: img/, value: x}]", "web.cache_control[0].match", "must start with one"},
		{"cache value empty", "cache_control: [{match: '*'}]", "web.cache_control[0].value", "required"},
		{"cache value injection", "cache_control: [{match: '*', value: \"a\\r\\nSet-Cookie: x\"}]", "web.cache_control[0].value", "control characters"},
		{"mime key", "mime_types: {md: text/markdown}", "web.mime_types.md", "not an extension"},
		{"access log relative", "access_log: {file: access.log}", "web.access_log.file", "absolute"},
		{"tls without key", "tls: {cert: /data/c.pem}", "web.tls.key", "required"},
		{"tls relative", "tls: {cert: c.pem, key: /data/k.pem}", "web.tls.cert", "absolute"},
		{"tls port clash", "port: 8443\n  tls: {port: 8443, cert: /c, key: /k}", "web.tls.port", "also web.port"},
		{"tls on admin port", "tls: {port: 9000, cert: /c, key: /k}", "web.tls.port", "admin.port"},
		{"timeout", "timeouts: {idle: 1ms}", "web.timeouts.idle", "out of range"},
		{"header limit", "max_header_bytes: 10", "web.max_header_bytes", "out of range"},
		{"unknown field", "gzip: true", "web.gzip", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(webNodeHead+"web:\n  "+tt.web+"\n"))
			if err == nil {
				t.Fatal("no error")
			}
			var found bool
			for _, p := range err.(*Error).Problems {
				if p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					found = true
					if p.Line == 0 {
						t.Errorf("%s: no line", p)
					}
				}
			}
			if !found {
				t.Errorf("want %s: ...%s...; got\n%v", tt.field, tt.msg, err)
			}
		})
	}
}
