package overlays

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var referenceFiles = []string{"lbbackup.yaml", "lbmaster.yaml", "web01.yaml", "web02.yaml"}

func TestReferenceCluster(t *testing.T) {
	nodes, err := LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]*Node{}
	for _, n := range nodes {
		names = append(names, n.Hostname)
		byName[n.Hostname] = n
	}
	if want := []string{"lbbackup", "lbmaster", "web01", "web02"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("LoadDir(.) hostnames = %v, want %v (testdata must not be read)", names, want)
	}
	want := map[string]struct{ role, eth0, wlan0 string }{
		"lbmaster": {RoleLBMaster, "192.168.1.14/24", "192.168.1.24/24"},
		"lbbackup": {RoleLBBackup, "192.168.1.12/24", "192.168.1.22/24"},
		"web01":    {RoleWeb, "192.168.1.10/24", "192.168.1.20/24"},
		"web02":    {RoleWeb, "192.168.1.11/24", "192.168.1.21/24"},
	}
	for name, w := range want {
		n := byName[name]
		if n.File != name+".yaml" || n.Role != w.role || n.Eth0Address().String() != w.eth0 ||
			n.Interfaces.Wlan0.Address.String() != w.wlan0 {
			t.Errorf("%s: got %+v", name, n)
		}
		for _, i := range []*Interface{n.Interfaces.Eth0, n.Interfaces.Wlan0} {
			if i.Gateway.String() != "192.168.1.1" {
				t.Errorf("%s: gateway %s", name, i.Gateway)
			}
		}
		if len(n.DNS) != 1 || n.DNS[0].String() != "192.168.1.1" || n.Admin.PortOrDefault() != 9000 {
			t.Errorf("%s: dns %v admin %v", name, n.DNS, n.Admin)
		}
	}
	for name, prio := range map[string]int{"lbmaster": 101, "lbbackup": 100} {
		v := byName[name].VIP
		if v.Priority != prio || v.RouterID != 77 || v.Address.String() != "192.168.1.15/24" ||
			v.InterfaceOrDefault() != "eth0" || v.AdvertIntervalOrDefault() != 100*time.Millisecond {
			t.Errorf("%s: vip %+v", name, v)
		}
		b := byName[name].Balancer
		if b.PortOrDefault() != 80 || len(b.Backends) != 2 ||
			b.Backends[0].Name != "web01" || b.Backends[0].Address != "192.168.1.10:80" ||
			b.Backends[1].Name != "web02" || b.Backends[1].Address != "192.168.1.11:80" {
			t.Errorf("%s: balancer %+v", name, b)
		}
	}
	for _, name := range []string{"web01", "web02"} {
		n := byName[name]
		if n.Mirror.Primary != "web01" || n.Web.RootOrDefault() != "/data/www" || n.Web.PortOrDefault() != 80 {
			t.Errorf("%s: web %+v mirror %+v", name, n.Web, n.Mirror)
		}
	}
	if !byName["web01"].Mirror.IsPrimary(byName["web01"]) || byName["web02"].Mirror.IsPrimary(byName["web02"]) {
		t.Error("IsPrimary is wrong")
	}

	qemu, err := Load("testdata/qemu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if qemu.Hostname != "qemu-test" || qemu.Role != RoleWeb || qemu.Eth0Address().String() != "10.0.2.15/24" ||
		qemu.Interfaces.Eth0.Gateway.String() != "10.0.2.2" || len(qemu.DNS) != 1 || qemu.DNS[0].String() != "10.0.2.3" ||
		qemu.Admin.PortOrDefault() != 9000 {
		t.Errorf("qemu.yaml: got %+v", qemu)
	}
	if err := ValidateCluster(append(nodes, qemu)); err != nil {
		t.Errorf("reference cluster with qemu.yaml: %v", err)
	}
}

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in text", s)
	return 0
}

func TestClusterProblems(t *testing.T) {
	ref := map[string]string{}
	for _, f := range referenceFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ref[f] = string(b)
	}
	tests := []struct {
		name      string
		file      string // the file edited, and where the problem is
		old, new  string // the edit: old is replaced by new once
		lineAt    string // text on the problem's line, after the edit
		field     string
		msg       string
		extraFile string // a further file to write, with extra
		extra     string
		at        string // the file with the problem, when not file
	}{
		{name: "duplicate eth0 address", file: "web02.yaml",
			old: "address: 192.168.1.11/24", new: "address: 192.168.1.14/24", lineAt: "address: 192.168.1.14/24",
			field: "interfaces.eth0.address", msg: "192.168.1.14 is also interfaces.eth0.address (DIR/lbmaster.yaml)"},
		{name: "wlan0 address is another node's eth0", file: "web02.yaml",
			old: "address: 192.168.1.21/24", new: "address: 192.168.1.14/24", lineAt: "address: 192.168.1.14/24",
			field: "interfaces.wlan0.address", msg: "192.168.1.14 is also interfaces.eth0.address (DIR/lbmaster.yaml)"},
		{name: "vip is a node address", file: "web01.yaml",
			old: "address: 192.168.1.20/24", new: "address: 192.168.1.15/24", at: "lbbackup.yaml",
			lineAt: "address: 192.168.1.15/24", field: "vip.address", msg: "192.168.1.15 is also interfaces.wlan0.address (DIR/web01.yaml)"},
		{name: "duplicate hostname", file: "web02.yaml",
			old: "hostname: web02", new: "hostname: lbmaster", lineAt: "hostname: lbmaster",
			field: "hostname", msg: `"lbmaster" is also the hostname of DIR/lbmaster.yaml`},
		{name: "router id differs", file: "lbmaster.yaml",
			old: "router_id: 77", new: "router_id: 78", lineAt: "router_id: 78",
			field: "vip.router_id", msg: "78 differs from 77 in vip.router_id (DIR/lbbackup.yaml)"},
		{name: "vip address differs", file: "lbmaster.yaml",
			old: "address: 192.168.1.15/24", new: "address: 192.168.1.16/24", lineAt: "address: 192.168.1.16/24",
			field: "vip.address", msg: "192.168.1.16/24 differs from 192.168.1.15/24"},
		{name: "advert interval differs", file: "lbmaster.yaml",
			old: "advert_interval: 100ms", new: "advert_interval: 2s", lineAt: "advert_interval: 2s",
			field: "vip.advert_interval", msg: "2s differs from 100ms"},
		{name: "same priority", file: "lbmaster.yaml",
			old: "priority: 101", new: "priority: 100", lineAt: "priority: 100",
			field: "vip.priority", msg: "100 is also vip.priority (DIR/lbbackup.yaml)"},
		{name: "backup above master", file: "lbbackup.yaml",
			old: "priority: 100", new: "priority: 102", lineAt: "priority: 102",
			field: "vip.priority", msg: "102 is not below the lbmaster's 101"},
		{name: "two masters", file: "lbmaster.yaml",
			extraFile: "lbmaster2.yaml", extra: "LBMASTER",
			field: "role", msg: "a second lbmaster (also role (DIR/lbmaster.yaml))"},
		{name: "mirror primary not a web node", file: "web02.yaml",
			old: "primary: web01", new: "primary: lbmaster", lineAt: "primary: lbmaster",
			field: "mirror.primary", msg: `"lbmaster" is not the hostname of a web node`},
		{name: "mirror primary unknown", file: "web01.yaml",
			old: "primary: web01", new: "primary: web09", lineAt: "primary: web09",
			field: "mirror.primary", msg: `"web09" is not the hostname of a web node`},
		{name: "mirror port differs", file: "web02.yaml",
			old: "port: 8873", new: "port: 8874", lineAt: "port: 8874",
			field: "mirror.port", msg: "8874 differs from 8873 in mirror.port (DIR/web01.yaml)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for f, text := range ref {
				if f == tt.file && tt.old != "" {
					if !strings.Contains(text, tt.old) {
						t.Fatalf("%q not in %s", tt.old, f)
					}
					text = strings.Replace(text, tt.old, tt.new, 1)
				}
				if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file, text := tt.file, ""
			if tt.extraFile != "" {
				file, text = tt.extraFile, strings.Replace(tt.extra, "LBMASTER", ref["lbmaster.yaml"], 1)
				text = strings.NewReplacer("hostname: lbmaster", "hostname: lbmaster2",
					"address: 192.168.1.14/24", "address: 192.168.1.16/24",
					"address: 192.168.1.24/24", "address: 192.168.1.26/24",
					"priority: 101", "priority: 99").Replace(text)
				if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				tt.lineAt = "role: lbmaster"
			} else if tt.at != "" {
				file, text = tt.at, ref[tt.at]
			} else {
				text = strings.Replace(ref[file], tt.old, tt.new, 1)
			}
			nodes, err := LoadDir(dir)
			if err == nil {
				t.Fatalf("LoadDir succeeded with %d nodes", len(nodes))
			}
			if nodes != nil {
				t.Error("LoadDir returned nodes with an error")
			}
			wantProblem(t, err, filepath.Join(dir, file), lineOf(t, text, tt.lineAt), tt.field,
				strings.ReplaceAll(tt.msg, "DIR", dir))
		})
	}
}

func TestValidateClusterGoNodes(t *testing.T) {
	nodes, err := LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.File = ""
	}
	// A copy of web02 with web01's hostname.
	dup := *nodes[3]
	dup.Hostname = "web01"
	err = ValidateCluster(append(nodes, nil, &dup))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v", err)
	}
	got := err.Error()
	for _, want := range []string{
		`node web01: hostname: "web01" is also the hostname of node web01`,
		"node web01: interfaces.eth0.address: 192.168.1.11 is also interfaces.eth0.address of web02",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error %q does not contain %q", got, want)
		}
	}
}

func TestLoadDirCollectsFileProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "hostname: a\nrole: web\ninterfaces: {eth0: {address: 10.0.0.300/24}}\n")
	write("b.yaml", webNode+"colour: red\n")
	write("c.yml", "not: read\n")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir)
	wantProblem(t, err, filepath.Join(dir, "a.yaml"), 3, "interfaces.eth0.address", "not an IPv4 address")
	wantProblem(t, err, filepath.Join(dir, "b.yaml"), 8, "colour", "unknown field")
	if strings.Contains(err.Error(), "c.yml") {
		t.Errorf("read a .yml file: %v", err)
	}

	_, err = LoadDir(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no *.yaml overlay files") {
		t.Errorf("empty dir: %v", err)
	}
}
