package overlays

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

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

// codecSample has a field of every kind the decoder and encoder handle, so
// that sections added later by the service helpers round-trip too.
type codecSample struct {
	Flag     *bool             `yaml:"flag"`
	Count    *int              `yaml:"count"`
	Small    uint8             `yaml:"small"`
	Ratio    float64           `yaml:"ratio"`
	On       bool              `yaml:"on"`
	Wait     Duration          `yaml:"wait"`
	WaitPtr  *Duration         `yaml:"wait_ptr"`
	Nets     []netip.Prefix    `yaml:"nets"`
	Labels   map[string]int    `yaml:"labels"`
	Items    []codecItem       `yaml:"items"`
	Empty    *codecItem        `yaml:"empty"`
	Text     string            `yaml:"text"`
	Skipped  string            `yaml:"-"`
	Nested   map[string]string `yaml:"nested,omitempty"`
	NoTag    int
	internal int
}

type codecItem struct {
	Name string `yaml:"name"`
}

func TestCodecRoundTrip(t *testing.T) {
	f, zero := false, 0
	in := codecSample{
		Flag: &f, Count: &zero, Small: 200, Ratio: 0.25, On: true,
		Wait: Duration{1500 * time.Millisecond}, WaitPtr: &Duration{},
		Nets:   []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8"), {}},
		Labels: map[string]int{"b": 2, "a": 0}, Items: []codecItem{{Name: "x"}, {}},
		Empty: &codecItem{}, Text: "80", NoTag: 7,
	}
	y := encodeValue(reflect.ValueOf(in))
	out, err := yaml.Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	p := newProblems("s.yaml")
	var back codecSample
	(&decoder{p: p}).decode(doc.Content[0], reflect.ValueOf(&back).Elem(), "")
	if err := p.err(); err != nil {
		t.Fatalf("%s\n%v", out, err)
	}
	if !reflect.DeepEqual(back, in) {
		t.Errorf("round trip through\n%s\ngave %+v\nwant %+v", out, back, in)
	}
}

func TestDecodeKinds(t *testing.T) {
	tests := []struct {
		yaml, field, msg string
	}{
		{"small: 256", "small", "256 is too large"},
		{"small: -1", "small", "not below 0"},
		{"ratio: abc", "ratio", "expected a number"},
		{"on: yes", "on", "expected true or false"},
		{"wait: 5", "wait", `"5" is not a duration`},
		{"wait: [1s]", "wait", "expected a single value, got a list"},
		{"nets: [10.0.0.1/8, 10.0.0.0/33]", "nets[1]", "bad prefix length /33"},
		{"labels: [a]", "labels", "expected a mapping"},
		{"labels: {a: 1, a: 2}", "labels.a", "defined twice"},
		{"labels: {a: x}", "labels.a", "expected a whole number"},
		{"items: [{name: a}, {nme: b}]", "items[1].nme", `did you mean "name"?`},
		{"empty: 3", "empty", "expected a mapping"},
		{"text: [a]", "text", "expected text, got a list"},
		{"notag: 1\ninternal: 2", "internal", "unknown field"},
		{"skipped: x", "skipped", "unknown field"},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
			t.Fatal(err)
		}
		p := newProblems("s.yaml")
		var v codecSample
		(&decoder{p: p}).decode(doc.Content[0], reflect.ValueOf(&v).Elem(), "")
		wantProblem(t, p.err(), "s.yaml", strings.Count(tt.yaml, "\n")+1, tt.field, tt.msg)
	}
}
