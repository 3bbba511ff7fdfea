package fat32

import (
	"bytes"
	"strings"
	"testing"
)

func TestShortName(t *testing.T) {
	tests := []struct {
		in   string
		want string // 11 bytes, "" for not an exact 8.3 name
	}{
		{"CONFIG.TXT", "CONFIG  TXT"},
		{"BOOTCODE.BIN", "BOOTCODEBIN"},
		{"README", "README     "},
		{"A.B", "A       B  "},
		{"FOO~1.TXT", "FOO~1   TXT"},
		{"config.txt", ""},
		{"TOOLONGNAME.TXT", ""},
		{"FOO.TEXT", ""},
		{".HIDDEN", ""},
		{"A.B.C", ""},
		{"A B.TXT", ""},
		{"FOO.", ""},
		{"", ""},
	}
	for _, tt := range tests {
		sn, ok := shortName(tt.in)
		got := ""
		if ok {
			got = string(sn[:])
		}
		if got != tt.want {
			t.Errorf("shortName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAliases(t *testing.T) {
	tests := []struct {
		names []string
		want  []string // short names in the same order, as "NAME.EXT"
		long  []bool
	}{
		{[]string{"CONFIG.TXT"}, []string{"CONFIG.TXT"}, []bool{false}},
		{[]string{"config.txt"}, []string{"CONFIG.TXT"}, []bool{true}},
		{[]string{"vc4-kms-v3d.dtbo", "vc4-kms-v3d-pi4.dtbo"}, []string{"VC4-KM~1.DTB", "VC4-KM~2.DTB"}, []bool{true, true}},
		// A plain alias is reserved before numeric tails are handed out.
		{[]string{"foo.txtx", "foo~1.txt"}, []string{"FOO~2.TXT", "FOO~1.TXT"}, []bool{true, true}},
		{[]string{"FOO~1.TXT", "foo.txtx"}, []string{"FOO~1.TXT", "FOO~2.TXT"}, []bool{false, true}},
		{[]string{".bashrc", "a b.c", "x.tar.gz", "ünï.txt", "....x"}, []string{"BASHRC~1", "AB~1.C", "XTAR~1.GZ", "_N_~1.TXT", "X~1"}, []bool{true, true, true, true, true}},
		{[]string{"+plus", " .x"}, []string{"_PLUS~1", "_~1.X"}, []bool{true, true}},
	}
	for _, tt := range tests {
		d := &node{dir: true}
		for _, n := range tt.names {
			d.children = append(d.children, &node{name: n, path: n, parent: d})
		}
		if err := assignNames(d); err != nil {
			t.Fatalf("%q: %v", tt.names, err)
		}
		for i, c := range d.children {
			if got := displayShort(c.short, 0); got != tt.want[i] || c.long != tt.long[i] {
				t.Errorf("%q: alias %q long %v, want %q long %v", c.name, got, c.long, tt.want[i], tt.long[i])
			}
		}
	}
}

// TestAliasLinear checks that handing out many aliases with one basis
// probes each candidate about once.
func TestAliasLinear(t *testing.T) {
	a := newAliaser(0)
	seen := map[[11]byte]bool{}
	const n = 30000
	for i := range n {
		base := "overla" + string(rune('a'+i%3)) + "-file" // three bases sharing 6 characters
		sn, err := a.tailed(basisName(base + ".dtbo"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[sn] {
			t.Fatalf("alias %q handed out twice", sn)
		}
		seen[sn] = true
	}
	if a.probes > 2*n {
		t.Errorf("%d probes for %d aliases: not linear", a.probes, n)
	}
}

func TestLFNGolden(t *testing.T) {
	sn, _ := shortName("CONFIG.TXT")
	got := lfnEntries("config.txt", sn)
	want := []byte{
		0x41, 'c', 0, 'o', 0, 'n', 0, 'f', 0, 'i', 0, // seq 1 | last, chars 1-5
		0x0F, 0x00, 0x39, // attr, type, checksum
		'g', 0, '.', 0, 't', 0, 'x', 0, 't', 0, 0, 0, // chars 6-11: "g.txt" and the terminator
		0, 0, // cluster
		0xFF, 0xFF, 0xFF, 0xFF, // chars 12-13: padding
	}
	if !bytes.Equal(got, want) {
		t.Errorf("lfnEntries(config.txt) =\n% x\nwant\n% x", got, want)
	}
	// 26 characters: two full entries, no terminator; highest sequence first.
	long := lfnEntries(strings.Repeat("a", 26), sn)
	if len(long) != 64 || long[0] != 0x42 || long[32] != 0x01 {
		t.Errorf("26-char name: % x", long)
	}
}

func TestValidateName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"config.txt", true},
		{"A long name with spaces", true},
		{"名前", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{strings.Repeat("😀", 128), false}, // 256 UTF-16 units
		{"a*b", false},
		{"a\x01b", false},
		{"trailing ", false},
		{"trailing.", false},
		{"\xff", false},
		{"..", false},
	} {
		if err := validateName(tt.name); (err == nil) != tt.ok {
			t.Errorf("validateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
