package overlays

import (
	"errors"
	"strings"
	"testing"
)

// webNode is a valid web overlay; cases below are written out in full so
// that the line numbers they expect can be read off the text.
const webNode = `hostname: web01
role: web
dns: [192.168.1.1]
interfaces:
  eth0:
    address: 192.168.1.10/24
    gateway: 192.168.1.1
`

// wantProblem checks that err is an *Error holding a problem with the given
// file, line and field whose message contains msg, and that Error() prints it
// as "file:line: field: ...".
func wantProblem(t *testing.T, err error, file string, line int, field, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	for _, p := range e.Problems {
		if p.Field == field && p.Line == line && strings.Contains(p.Msg, msg) {
			if p.File != file {
				t.Errorf("problem %q: file %q, want %q", p, p.File, file)
			}
			prefix := Problem{File: file, Line: line}.String()
			if field != "" {
				prefix += field + ": "
			}
			if !strings.Contains(err.Error(), prefix+p.Msg) {
				t.Errorf("Error() = %q, want it to contain %q", err.Error(), prefix+p.Msg)
			}
			return
		}
	}
	t.Errorf("no problem at line %d, field %q, containing %q; got:\n%v", line, field, msg, err)
}

func TestParseValid(t *testing.T) {
	n, err := Parse("web01.yaml", []byte(webNode))
	if err != nil {
		t.Fatal(err)
	}
	if n.Hostname != "web01" || n.Role != RoleWeb || n.File != "web01.yaml" {
		t.Errorf("got %+v", n)
	}
	if got := n.Eth0Address().String(); got != "192.168.1.10/24" {
		t.Errorf("Eth0Address = %s", got)
	}
	if n.BoardOrDefault() != BoardPi3 || n.Admin.PortOrDefault() != 9000 ||
		n.Web.PortOrDefault() != 80 || n.Web.RootOrDefault() != "/data/www" ||
		n.Mirror.PortOrDefault() != 8873 || n.Balancer.PortOrDefault() != 80 ||
		n.VIP.InterfaceOrDefault() != "eth0" || n.VIP.AdvertIntervalOrDefault() != DefaultAdvertInterval {
		t.Error("defaults are wrong")
	}
	if n.Interfaces.Wlan0 != nil || n.Interface("wlan0") != nil || n.Interface("eth0") != n.Interfaces.Eth0 {
		t.Error("Interface lookup is wrong")
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		line  int
		field string
		msg   string
	}{
		{"bad address", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.300/24
`, 5, "interfaces.eth0.address", `"192.168.1.300/24" is not an IPv4 address`},
		{"bad prefix", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/33
`, 5, "interfaces.eth0.address", "bad prefix length /33"},
		{"missing prefix", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10
`, 5, "interfaces.eth0.address", "needs a prefix length, like 192.168.1.10/24"},
		{"prefix zero", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/0
`, 5, "interfaces.eth0.address", "/0 leaves no subnet"},
		{"network address", `hostname: web01
role: web
interfaces:
  eth0: {address: 192.168.1.0/24}
`, 4, "interfaces.eth0.address", "network address of 192.168.1.0/24"},
		{"broadcast address", `hostname: web01
role: web
interfaces:
  eth0: {address: 192.168.1.255/24}
`, 4, "interfaces.eth0.address", "broadcast address of 192.168.1.0/24"},
		{"ipv6 address", `hostname: web01
role: web
interfaces:
  eth0: {address: "fd00::1/64"}
`, 4, "interfaces.eth0.address", "not an IPv4 address"},
		{"loopback address", `hostname: web01
role: web
interfaces:
  eth0: {address: 127.0.0.5/8}
`, 4, "interfaces.eth0.address", "loopback"},
		{"gateway outside subnet", `hostname: lbmaster
role: web
interfaces:
  eth0:
    address: 192.168.1.14/24
    gateway: 10.0.0.1
`, 6, "interfaces.eth0.gateway", "10.0.0.1 is outside 192.168.1.0/24"},
		{"gateway is own address", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/24
    gateway: 192.168.1.10
`, 6, "interfaces.eth0.gateway", "own address"},
		{"gateway with prefix", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/24
    gateway: 192.168.1.1/24
`, 6, "interfaces.eth0.gateway", "without a prefix length"},
		{"wlan0 gateway outside subnet", webNode + `  wlan0:
    address: 192.168.2.20/24
    gateway: 192.168.1.1
`, 10, "interfaces.wlan0.gateway", "outside 192.168.2.0/24"},
		{"same address on both interfaces", webNode + `  wlan0: {address: 192.168.1.10/24}
`, 8, "interfaces.wlan0.address", "also eth0's address"},
		{"psk too short", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: home, psk: short}
`, 8, "interfaces.wlan0.psk", "8 to 63"},
		{"psk without ssid", webNode + `  wlan0: {address: 192.168.1.20/24, psk: longenough}
`, 8, "interfaces.wlan0.psk", "without ssid"},
		{"ssid with newline", webNode + `  wlan0: {address: 192.168.1.20/24, ssid: "home\nnetwork={"}
`, 8, "interfaces.wlan0.ssid", "control characters"},
		{"huge number", webNode + `admin: {port: 99999999999999999999}
`, 8, "admin.port", "99999999999999999999 is too large"},
		{"wifi on eth0", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/24
    ssid: home
`, 6, "interfaces.eth0.ssid", "belong on wlan0"},
		{"bad hostname upper case", `hostname: Web01
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 1, "hostname", `must be lower-case ("web01")`},
		{"bad hostname underscore", `role: web
hostname: web_01
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 2, "hostname", "may only hold a-z, 0-9"},
		{"bad hostname dash", `hostname: -web
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 1, "hostname", "may not start or end with '-'"},
		{"bad hostname long label", `hostname: ` + strings.Repeat("a", 64) + `
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 1, "hostname", "at most 63"},
		{"missing hostname", `role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 1, "hostname", "required"},
		{"unknown field", webNode + `colour: blue
`, 8, "colour", `unknown field "colour" (known fields: hostname, role`},
		{"unknown nested field", `hostname: web01
role: web
interfaces:
  eth0:
    adress: 192.168.1.10/24
`, 5, "interfaces.eth0.adress", `did you mean "address"?`},
		{"unknown interface", webNode + `  eth1: {address: 192.168.1.30/24}
`, 8, "interfaces.eth1", "unknown field"},
		{"wrong type port", webNode + `admin:
  port: nine
`, 9, "admin.port", `expected a whole number, got "nine"`},
		{"wrong type quoted port", webNode + `admin: {port: "9000"}
`, 8, "admin.port", "expected a whole number"},
		{"wrong type list", `hostname: web01
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
dns: 192.168.1.1
`, 4, "dns", "expected a list"},
		{"wrong type mapping", `hostname: web01
role: web
interfaces: [eth0]
`, 3, "interfaces", "expected a mapping"},
		{"wrong type text", `hostname: {name: web01}
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 1, "hostname", "expected text, got a mapping"},
		{"dns entry", `hostname: web01
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
dns:
  - 192.168.1.1
  - 127.0.0.1
`, 6, "dns[1]", "loopback"},
		{"dns twice", `hostname: web01
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
dns: [192.168.1.1, 192.168.1.1]
`, 4, "dns[1]", "listed twice"},
		{"vip on web node", webNode + `vip:
  router_id: 77
  priority: 100
  address: 192.168.1.15/24
`, 8, "vip", "only lbmaster and lbbackup"},
		{"balancer on web node", webNode + `balancer:
  backends: [{name: web02, address: 192.168.1.11:80}]
`, 8, "balancer", "only lbmaster and lbbackup"},
		{"web on lb node", lbNode(`vip: {router_id: 77, priority: 100, address: 192.168.1.15/24}
web: {port: 80}
`), 7, "web", "only web nodes"},
		{"mirror on lb node", lbNode(`vip: {router_id: 77, priority: 100, address: 192.168.1.15/24}
mirror: {primary: web01}
`), 7, "mirror", "only web nodes"},
		{"lb without vip", lbNode(""), 1, "vip", "required on lbmaster nodes"},
		{"vip outside subnet", lbNode(`vip:
  router_id: 77
  priority: 101
  address: 192.168.2.15/24
`), 9, "vip.address", "192.168.2.15 is outside 192.168.1.0/24, the subnet of eth0"},
		{"vip is node address", lbNode(`vip:
  router_id: 77
  priority: 101
  address: 192.168.1.14/24
`), 9, "vip.address", "this node's own address"},
		{"vip prefix length", lbNode(`vip:
  router_id: 77
  priority: 101
  address: 192.168.1.15/25
`), 9, "vip.address", "prefix length /25 differs from eth0's /24"},
		{"vip router id", lbNode(`vip:
  router_id: 256
  priority: 101
  address: 192.168.1.15/24
`), 7, "vip.router_id", "256 is out of range"},
		{"vip priority 255 not owner", lbNode(`vip:
  router_id: 77
  priority: 255
  address: 192.168.1.15/24
`), 8, "vip.priority", "255 is only for the node that owns the address"},
		{"vip priority zero", lbNode(`vip: {router_id: 77, address: 192.168.1.15/24}
`), 6, "vip.priority", "0 is out of range"},
		{"vip interface missing", `hostname: lbmaster
role: lbmaster
interfaces: {eth0: {address: 192.168.1.14/24}}
vip:
  interface: wlan0
  router_id: 77
  priority: 101
  address: 192.168.1.15/24
`, 5, "vip.interface", "wlan0 is not configured"},
		{"vip interface unknown", lbNode(`vip:
  interface: eth7
  router_id: 77
  priority: 101
  address: 192.168.1.15/24
`), 7, "vip.interface", `"eth7" is not an interface`},
		{"vip advert interval", lbNode(`vip:
  router_id: 77
  priority: 101
  address: 192.168.1.15/24
  advert_interval: 5ms
`), 10, "vip.advert_interval", "5ms is out of range"},
		{"vip advert interval text", lbNode(`vip:
  router_id: 77
  priority: 101
  address: 192.168.1.15/24
  advert_interval: fast
`), 10, "vip.advert_interval", `"fast" is not a duration`},
		{"vip peer is self", lbNode(`vip:
  router_id: 77
  priority: 101
  address: 192.168.1.15/24
  peers: [192.168.1.12, 192.168.1.14]
`), 10, "vip.peers[1]", "this node's own address"},
		{"missing eth0", `hostname: web01
role: web
interfaces:
  wlan0: {address: 192.168.1.20/24}
`, 3, "interfaces.eth0", "required"},
		{"missing interfaces", `hostname: web01
role: web
`, 1, "interfaces.eth0", "required"},
		{"missing eth0 address", `hostname: web01
role: web
interfaces:
  eth0: {gateway: 192.168.1.1}
`, 4, "interfaces.eth0.address", "required"},
		{"bad board", webNode + `board: pi5
`, 8, "board", `"pi5" is not a board; use pi2, pi3 or pi4`},
		{"bad role", `hostname: web01
role: database
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 2, "role", `"database" is not a role; use lbmaster, lbbackup or web`},
		{"missing role", `hostname: web01
interfaces: {eth0: {address: 192.168.1.10/24}}
`, 1, "role", "required"},
		{"bad admin port", webNode + `admin:
  port: 70000
`, 9, "admin.port", "70000 is not a port; use 1 to 65535"},
		{"negative admin port", webNode + `admin: {port: -1}
`, 8, "admin.port", "-1 is not a port"},
		{"bad web port", webNode + `web:
  port: 65536
`, 9, "web.port", "65536 is not a port"},
		{"bad mirror port", webNode + `mirror: {primary: web01, port: 0x10000}
`, 8, "mirror.port", "65536 is not a port"},
		{"port conflict", webNode + `admin: {port: 8080}
web: {port: 8080}
`, 9, "web.port", "port 8080 is also used by admin.port"},
		{"port conflict with default", webNode + `admin: {port: 80}
`, 1, "web.port", "port 80 is also used by admin.port"},
		{"web root relative", webNode + `web: {root: data/www}
`, 8, "web.root", "not an absolute path"},
		{"web root control", webNode + `web: {root: "/data/\twww"}
`, 8, "web.root", "control characters"},
		{"web root unclean", webNode + `web: {root: /data/../etc}
`, 8, "web.root", "not clean; write /etc"},
		{"mirror without primary", webNode + `mirror: {port: 8873}
`, 8, "mirror.primary", "required"},
		{"mirror bad primary", webNode + `mirror:
  primary: Web01
`, 9, "mirror.primary", "must be lower-case"},
		{"duplicate key", webNode + `hostname: web02
`, 8, "hostname", "defined twice (first on line 1)"},
		{"duplicate nested key", `hostname: web01
role: web
interfaces:
  eth0:
    address: 192.168.1.10/24
    address: 192.168.1.11/24
`, 6, "interfaces.eth0.address", "defined twice (first on line 5)"},
		{"two documents", webNode + `---
hostname: web02
`, 8, "", "second YAML document"},
		{"alias", `hostname: &h web01
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
mirror: {primary: *h}
`, 4, "mirror.primary", "aliases (*h) are not supported"},
		{"syntax error", `hostname: web01
role: web
interfaces: {eth0: {address: 192.168.1.10/24}}
dns: [192.168.1.1]]
`, 3, "", "YAML syntax"}, // yaml.v3 names the line where its context began
		{"unclosed quote", "hostname: web01\nrole: \"web\n", 2, "", "YAML syntax"},
		{"tab indentation", "hostname: web01\nrole: web\ninterfaces:\n\teth0: {}\n", 4, "", "YAML syntax"},
		{"empty file", "", 1, "", "file is empty"},
		{"only a comment", "# nothing yet\n", 1, "", "file is empty"},
		{"not a mapping", "- web01\n", 1, "", "expected a mapping"},
		{"scalar document", "web01\n", 1, "", "expected a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse("overlays/test.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", n)
			}
			if n != nil {
				t.Errorf("Parse returned a node with an error")
			}
			wantProblem(t, err, "overlays/test.yaml", tt.line, tt.field, tt.msg)
		})
	}
}

// lbNode is a valid lbmaster overlay without its vip section (lines 1-5),
// followed by rest from line 6.
func lbNode(rest string) string {
	return `hostname: lbmaster
role: lbmaster
interfaces:
  eth0: {address: 192.168.1.14/24, gateway: 192.168.1.1}
  wlan0: {address: 192.168.1.24/24}
` + rest
}

func TestParseReportsEveryProblem(t *testing.T) {
	const in = `hostname: Web01
role: web
board: pi9
interfaces:
  eth0:
    address: 192.168.1.300/24
    gateway: 10.0.0.1
  wlan0: {address: 192.168.1.20/24, gateway: 10.0.0.1}
admin: {port: 0x20000}
vip: {router_id: 1}
`
	_, err := Parse("x.yaml", []byte(in))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v", err)
	}
	want := []struct {
		line  int
		field string
	}{
		{1, "hostname"}, {3, "board"}, {6, "interfaces.eth0.address"},
		{8, "interfaces.wlan0.gateway"}, {9, "admin.port"}, {10, "vip"},
	}
	if len(e.Problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(e.Problems), len(want), err)
	}
	for i, w := range want {
		if i < len(e.Problems) && (e.Problems[i].Line != w.line || e.Problems[i].Field != w.field) {
			t.Errorf("problem %d = %v, want line %d field %s", i, e.Problems[i], w.line, w.field)
		}
	}
	// The gateway of an unreadable address is not judged: its subnet is unknown.
	if strings.Contains(err.Error(), "interfaces.eth0.gateway") {
		t.Errorf("judged eth0's gateway against a bad address:\n%v", err)
	}
}

func TestParseNullValues(t *testing.T) {
	n, err := Parse("n.yaml", []byte(webNode+"board:\nweb:\nmirror: ~\nadmin: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n.Board != "" || n.Web != nil || n.Mirror != nil || n.Admin.Port != 0 {
		t.Errorf("got %+v", n)
	}
}

func TestParseTooLarge(t *testing.T) {
	data := []byte(webNode + "#" + strings.Repeat("x", MaxSize))
	_, err := Parse("big.yaml", data)
	wantProblem(t, err, "big.yaml", 0, "", "at most")
}

func TestValidateGoNode(t *testing.T) {
	n := &Node{Hostname: "web_1", Role: RoleWeb, Interfaces: Interfaces{Eth0: &Interface{}}, Admin: Admin{Port: -5}}
	err := n.Validate()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v", err)
	}
	fields := map[string]bool{}
	for _, p := range e.Problems {
		if p.Line != 0 || p.File != "" {
			t.Errorf("problem %v has a position", p)
		}
		fields[p.Field] = true
	}
	for _, f := range []string{"hostname", "interfaces.eth0.address", "admin.port"} {
		if !fields[f] {
			t.Errorf("no problem with %s in:\n%v", f, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "hostname: ") {
		t.Errorf("Error() = %q", err)
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load("testdata/no-such-file.yaml"); err == nil || !strings.Contains(err.Error(), "reading overlay") {
		t.Errorf("got %v", err)
	}
}
