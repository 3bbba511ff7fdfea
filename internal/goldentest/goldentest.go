// Package goldentest checks test output against a golden SHA-256 kept in
// testdata, for the image writers' "did the on-disk format change" tests.
// It is imported only by _test.go files.
package goldentest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// SHA256 fails t unless the SHA-256 of data, in hex, is what the file
// golden holds (surrounding white space aside). With update it first
// rewrites golden with the hash and a newline, as go test -update does.
func SHA256(t testing.TB, golden string, data []byte, update bool) {
	t.Helper()
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if update {
		if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading the golden hash (go test -update writes it): %v", err)
	}
	if want := strings.TrimSpace(string(b)); got != want {
		t.Errorf("SHA-256 %s, golden %s in %s: the on-disk format changed; if on purpose, check the image with the real tools and run go test -update", got, want, golden)
	}
}
