package overlays

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that every failure is an *Error
// naming the file, and that a Node that parses also validates and survives
// Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range append(referenceFiles, "testdata/qemu.yaml") {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		webNode,
		webNode + "web: {port: 8080, root: /srv}\nmirror: {primary: web01}\n",
		lbNode("vip: {router_id: 1, priority: 255, address: 192.168.1.14/24, peers: [192.168.1.12]}\n"),
		webNode + "  wlan0: {address: 192.168.1.20/24, ssid: home, psk: \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}\n",
		"hostname: a\nhostname: b\n",
		"x: &a [1]\ny: *a\n",
		"---\n---\n",
		"interfaces: {eth0: {address: \"1.2.3.4/8\", gateway: ''}}\n",
		"dns: [~, '', 1.1.1.1]\nadmin: {port: 0x10}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Parse("f.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			for _, p := range e.Problems {
				if p.File != "f.yaml" || p.Msg == "" {
					t.Fatalf("problem %#v lacks its file or message", p)
				}
			}
			return
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("Parse accepted a node that Validate refuses: %v", err)
		}
		out, err := Marshal(n)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse("f.yaml", out)
		if err != nil {
			t.Fatalf("re-parsing Marshal's output:\n%s\n%v", out, err)
		}
		if !reflect.DeepEqual(back, n) {
			t.Fatalf("Marshal and Parse changed the node:\n%s\n%#v\n%#v", out, n, back)
		}
		_ = ValidateCluster([]*Node{n, back})
	})
}
