package overlays

import (
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestMarshalRoundTrip(t *testing.T) {
	nodes, err := LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	qemu, err := Load("testdata/qemu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(nodes, qemu) {
		out, err := Marshal(n)
		if err != nil {
			t.Fatalf("%s: %v", n.Hostname, err)
		}
		back, err := Parse(n.File, out)
		if err != nil {
			t.Fatalf("%s: re-parsing\n%s\n%v", n.Hostname, out, err)
		}
		if !reflect.DeepEqual(back, n) {
			t.Errorf("%s: round trip changed the node:\n%s", n.Hostname, out)
		}
		// yaml.Marshal goes through Node.MarshalYAML and keeps gateways
		// (yaml.v3 itself would drop netip.Addr fields tagged omitempty).
		out2, err := yaml.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out2), "gateway: ") {
			t.Errorf("%s: yaml.Marshal lost the gateway:\n%s", n.Hostname, out2)
		}
	}
}

func TestMarshalKeepsEmptySections(t *testing.T) {
	n, err := Parse("w.yaml", []byte(webNode+"web: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("w.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if back.Web == nil {
		t.Errorf("web: {} was lost:\n%s", out)
	}
}

func TestYAMLUnmarshalValidates(t *testing.T) {
	var cluster struct {
		Nodes []Node `yaml:"nodes"`
	}
	good := "nodes:\n  - hostname: web01\n    role: web\n    interfaces: {eth0: {address: 192.168.1.10/24}}\n"
	if err := yaml.Unmarshal([]byte(good), &cluster); err != nil {
		t.Fatal(err)
	}
	if len(cluster.Nodes) != 1 || cluster.Nodes[0].Eth0Address().String() != "192.168.1.10/24" {
		t.Errorf("got %+v", cluster.Nodes)
	}
	bad := "nodes:\n  - hostname: web01\n    role: web\n    interfaces: {eth0: {address: 192.168.1.10/24, gateway: 10.0.0.1}}\n"
	err := yaml.Unmarshal([]byte(bad), &cluster)
	wantProblem(t, err, "", 4, "interfaces.eth0.gateway", "10.0.0.1 is outside 192.168.1.0/24")
}
