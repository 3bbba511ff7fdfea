package ota

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	b, _ := testManifest().Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"files":[{"path":"../x"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseManifest(in)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("a parsed manifest does not marshal: %v", err)
		}
		if _, err := ParseManifest(out); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	m, _ := testManifest().Marshal()
	f.Add(Sign(testKey(1), m).Marshal())
	f.Add([]byte(`{"alg":"ed25519"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseSignature(in)
		if err != nil {
			return
		}
		Verify([]ed25519.PublicKey{testKey(1).Public().(ed25519.PublicKey)}, m, s)
	})
}

// FuzzReader reads arbitrary payload streams: no panic, no part longer
// than its manifest size.
func FuzzReader(f *testing.F) {
	golden := goldenStream(&testing.T{})
	f.Add(golden)
	f.Add(bytes.Replace(golden, []byte("Iroot"), []byte("DIroot"), 1))
	f.Add([]byte(streamMagic))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		for {
			e, err := r.Next()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, e.Data)
			if n > e.Size {
				t.Fatalf("part %d gave %d bytes, size %d", e.Index, n, e.Size)
			}
		}
	})
}
