package boards

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// The parsers of outside input in this package: module files, ar archives
// (.deb) and apt's sources. None may panic or loop on any input.

func FuzzParseModInfo(f *testing.F) {
	f.Add(makeKO("name=ext4", "depends=jbd2,mbcache", "softdep=pre: crc32c"))
	f.Add(makeKO(""))
	f.Add([]byte("\x7fELF\x01\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		mi, err := ParseModInfo("kernel/x-y.ko", b)
		if err == nil && mi.Name == "" {
			t.Fatal("parsed a module without a name")
		}
	})
}

func FuzzArReader(f *testing.F) {
	f.Add(makeAr([2]string{"debian-binary", "2.0\n"}, [2]string{"data.tar.xz", "xyz"}))
	f.Add([]byte(arMagic + "short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newArReader(bytes.NewReader(b))
		for i := 0; i < 100; i++ {
			m, err := r.Next()
			if err != nil {
				return
			}
			n, err := io.Copy(io.Discard, r)
			if err == nil && n != m.Size {
				t.Fatalf("member %q: read %d of %d bytes without error", m.Name, n, m.Size)
			}
		}
	})
	f.Add(makeAr())
}

func FuzzAptSources(f *testing.F) {
	f.Add("deb [arch=armhf] http://m.example/debian bookworm main\n")
	f.Add("Types: deb\nURIs: http://m.example/debian\n second\nSuites: bookworm\n\n#x\nEnabled: no\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range append(parseOneLineSources(s), parseDeb822Sources(s)...) {
			for _, u := range e.uris {
				if strings.ContainsAny(u, " \t\n") {
					t.Fatalf("URI %q has white space", u)
				}
			}
		}
	})
}
