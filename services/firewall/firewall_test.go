package firewall

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func loadNode(t testing.TB, name string) *overlays.Node {
	t.Helper()
	n, err := overlays.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGolden compares the rendered ruleset of each overlay in testdata
// with its .nft golden file (go test -update rewrites them).
func TestGolden(t *testing.T) {
	overlaysIn, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(overlaysIn) == 0 {
		t.Fatalf("no overlays in testdata: %v", err)
	}
	for _, path := range overlaysIn {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			n := loadNode(t, name+".yaml")
			got := Generate(n, Options{}).String()
			golden := filepath.Join("testdata", name+".nft")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("ruleset of %s differs from %s:\n%s", path, golden, got)
			}
		})
	}
}

func TestNoMeters(t *testing.T) {
	rs := Generate(loadNode(t, "lb.yaml"), Options{NoMeters: true})
	if len(rs.Sets) != 0 || strings.Contains(rs.String(), "update @") {
		t.Errorf("NoMeters still meters:\n%s", rs)
	}
	if !strings.Contains(rs.String(), "# note: this kernel cannot meter") {
		t.Errorf("no note about the missing meters:\n%s", rs)
	}
}

func TestPublicPorts(t *testing.T) {
	tests := []struct {
		file string
		want []Port
	}{
		{"lb.yaml", []Port{{80, "balancer"}, {443, "balancer TLS"}, {1936, "balancer stats"}}},
		{"lb-default.yaml", []Port{{80, "balancer"}}},
		{"web-primary.yaml", []Port{{8080, "web"}, {8443, "web TLS"}}},
		{"web-replica.yaml", []Port{{80, "web"}}},
	}
	for _, tt := range tests {
		if got := PublicPorts(loadNode(t, tt.file)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: public ports %v, want %v", tt.file, got, tt.want)
		}
	}
}

// TestRulesetProperties checks what every generated ruleset must hold, on
// the testdata overlays; FuzzGenerate checks the same on fuzzed ones.
func TestRulesetProperties(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range paths {
		n := loadNode(t, filepath.Base(p))
		if err := checkRuleset(n, Generate(n, Options{})); err != "" {
			t.Errorf("%s: %s", p, err)
		}
	}
}

// checkRuleset returns what is wrong with rs as n's ruleset, or "".
func checkRuleset(n *overlays.Node, rs *Ruleset) string {
	if !n.FirewallEnabled() {
		if rs != nil {
			return "a ruleset for a node that disables the firewall"
		}
		return ""
	}
	if rs == nil {
		return "no ruleset"
	}
	public := map[uint16]bool{}
	for _, p := range PublicPorts(n) {
		public[p.Port] = true
	}
	var input *Chain
	for i := range rs.Chains {
		if rs.Chains[i].Hook == HookInput {
			input = &rs.Chains[i]
		}
	}
	if input == nil || input.Policy != Drop {
		return "no input chain with policy drop"
	}
	if last := input.Rules[len(input.Rules)-1]; last.Verdict != Drop || len(last.Match) != 0 {
		return "the input chain does not end in a catch-all drop"
	}
	counters := map[string]bool{}
	for _, c := range rs.Counters {
		counters[c] = true
	}
	opened := map[uint16]bool{}
	for _, r := range input.Rules {
		if r.Counter != "" && !counters[r.Counter] {
			return "rule " + r.String() + " uses an undeclared counter"
		}
		if r.Verdict != Accept {
			continue
		}
		var src, lo, ct, limited bool
		var port uint16
		var proto IPProto
		for _, m := range r.Match {
			switch m := m.(type) {
			case SAddr:
				src = true
				if m.Bits() == 0 {
					return "rule " + r.String() + " names every source"
				}
			case IIfName:
				lo = m == "lo"
			case CtState:
				ct = m&(CtNew|CtUntracked|CtInvalid) == 0
			case TCPDport:
				port = uint16(m)
			case IPProto:
				proto = m
			case ICMPType:
				proto = ProtoICMP
				limited = limited || m == ICMPDestUnreachable
			case Limit:
				limited = true
			}
		}
		switch {
		case lo, ct, src:
		case port != 0 && public[port]:
			opened[port] = true
		case proto == ProtoIGMP, proto == ProtoICMP && limited:
		default:
			return "rule " + r.String() + " accepts from anyone"
		}
		if proto == ProtoVRRP && !src {
			return "VRRP accepted without a source"
		}
	}
	for p := range public {
		if !opened[p] {
			return "public port not opened"
		}
	}
	return ""
}

// FuzzGenerate feeds overlays to Generate: it must not panic, must be
// deterministic, and every ruleset must hold checkRuleset's properties
// and render without secrets.
func FuzzGenerate(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("hostname: a\nrole: web\ninterfaces: {eth0: {address: 10.0.0.2/8}}\nweb: {port: 9000}\n"))
	f.Add([]byte("hostname: a\nrole: lbbackup\ninterfaces: {eth0: {address: 10.0.0.2/31}}\nvip: {router_id: 1, priority: 1, address: 10.0.0.3/31, routers: [{router_id: 2, priority: 1, address: 10.0.0.3/32}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := overlays.Parse("f.yaml", data)
		if err != nil {
			return
		}
		rs := Generate(n, Options{})
		if msg := checkRuleset(n, rs); msg != "" {
			t.Fatalf("%s\n%s", msg, rs)
		}
		if again := Generate(n, Options{}); !reflect.DeepEqual(rs, again) {
			t.Fatal("Generate is not deterministic")
		}
		text := rs.String()
		for _, secret := range secretsOf(n) {
			if strings.Contains(text, secret) {
				t.Fatalf("the ruleset shows a secret %q", secret)
			}
		}
		_ = Generate(n, Options{NoMeters: true}).String()
	})
}

// secretsOf lists the secret values an overlay holds (at least 8 bytes,
// so that a short one does not match by chance).
func secretsOf(n *overlays.Node) []string {
	var out []string
	if w := n.Interfaces.Wlan0; w != nil && len(w.PSK) >= 8 {
		out = append(out, w.PSK)
	}
	if n.Balancer != nil && n.Balancer.Stats != nil && len(n.Balancer.Stats.PasswordHash) >= 8 {
		out = append(out, n.Balancer.Stats.PasswordHash)
	}
	return out
}
