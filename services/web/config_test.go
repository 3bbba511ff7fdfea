package web

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Listen != ":80" || c.Root != "/data/www" || c.Index != "index.html" || c.WhoAmIPath != "/whoami" ||
		c.HealthPath != "/healthz" || c.TLSListen != ":443" || c.ReadHeaderTimeout != 10*time.Second ||
		c.MaxHeaderBytes != 16<<10 || c.FileCacheTTL != time.Second || c.MaxCachedFile != 256<<10 {
		t.Errorf("defaults: %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"listen without port", Config{Listen: "127.0.0.1"}, []string{"web: Listen:"}},
		{"relative root", Config{Root: "www"}, []string{"web: Root:"}},
		{"index with slash", Config{Index: "a/index.html"}, []string{"web: Index:"}},
		{"index dot-dot", Config{Index: ".."}, []string{"web: Index:"}},
		{"whoami not a path", Config{WhoAmIPath: "whoami"}, []string{"web: WhoAmIPath:"}},
		{"health with query", Config{HealthPath: "/h?x"}, []string{"web: HealthPath:"}},
		{"same paths", Config{WhoAmIPath: "/x", HealthPath: "/x"}, []string{"is also WhoAmIPath"}},
		{"404 page relative", Config{NotFoundPage: "404.html"}, []string{"web: NotFoundPage:"}},
		{"empty cache match", Config{CacheControl: []CacheRule{{Value: "x"}}}, []string{"CacheControl[0].Match"}},
		{"bad cache pattern", Config{CacheControl: []CacheRule{{Match: "[", Value: "x"}}}, []string{"CacheControl[0].Match"}},
		{"relative folder pattern", Config{CacheControl: []CacheRule{{Match: "img/*.png", Value: "x"}}}, []string{"CacheControl[0].Match"}},
		{"header injection", Config{CacheControl: []CacheRule{{Match: "*", Value: "x\r\nSet-Cookie: a"}}}, []string{"CacheControl[0].Value"}},
		{"mime key", Config{MimeTypes: map[string]string{"md": "text/markdown"}}, []string{"web: MimeTypes:"}},
		{"access log relative", Config{AccessLogFile: "access.log"}, []string{"web: AccessLogFile:"}},
		{"cert without key", Config{TLSCert: "/c.pem"}, []string{"web: TLSCert:"}},
		{"TLS on the HTTP port", Config{TLSCert: "/c", TLSKey: "/k", Listen: ":8080", TLSListen: ":8080"}, []string{"web: TLSListen:"}},
		{"negative timeout", Config{IdleTimeout: -time.Second}, []string{"web: IdleTimeout:"}},
		{"tiny header limit", Config{MaxHeaderBytes: 10}, []string{"web: MaxHeaderBytes:"}},
		{"URI beyond header", Config{MaxHeaderBytes: 1024, MaxURIBytes: 2048}, []string{"web: MaxURIBytes:"}},
		{"all at once", Config{Root: "www", Index: "/", HealthPath: "x"}, []string{"Root", "Index", "HealthPath"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tt.name, err, w)
			}
		}
	}
}

func TestCacheControlFor(t *testing.T) {
	c := Config{CacheControl: []CacheRule{
		{Match: "/static/", Value: "static"},
		{Match: "/img/*.png", Value: "png"},
		{Match: "*.css", Value: "css"},
		{Match: "*", Value: "any"},
	}}
	for p, want := range map[string]string{
		"/static/a/b.css": "static",
		"/static/":        "static",
		"/img/a.png":      "png",
		"/img/sub/a.png":  "any", // * stays within one folder
		"/a/b/c.css":      "css",
		"/x.txt":          "any",
	} {
		if got := c.cacheControlFor(p); got != want {
			t.Errorf("cacheControlFor(%q) = %q, want %q", p, got, want)
		}
	}
	if got := (&Config{}).cacheControlFor("/a"); got != "" {
		t.Errorf("no rules: %q", got)
	}
}

func TestContentType(t *testing.T) {
	extra := map[string]string{".md": "text/markdown", ".HTML": "text/x-upper"}
	for name, want := range map[string]string{
		"a.html":     "text/html; charset=utf-8",
		"a.HTML":     "text/x-upper",
		"a.Css":      "text/css; charset=utf-8",
		"a.md":       "text/markdown",
		"a.woff2":    "font/woff2",
		"a.tar.gz":   "application/gzip",
		"Makefile":   "application/octet-stream",
		"a.unknown":  "application/octet-stream",
		"index.json": "application/json",
	} {
		if got := contentType(name, extra); got != want {
			t.Errorf("contentType(%q) = %q, want %q", name, got, want)
		}
	}
}
