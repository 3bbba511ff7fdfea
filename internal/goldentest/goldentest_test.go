package goldentest

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Fatal(...any)          { r.failed = true }

func TestSHA256(t *testing.T) {
	golden := filepath.Join(t.TempDir(), "golden.sha256")
	// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	tests := []struct {
		name    string
		file    string // "" for no file
		data    string
		update  bool
		fail    bool
		written string
	}{
		{"match", abc + "\n", "abc", false, false, ""},
		{"match without newline", abc, "abc", false, false, ""},
		{"mismatch", abc + "\n", "abd", false, true, ""},
		{"missing", "", "abc", false, true, ""},
		{"update", "stale\n", "abc", true, false, abc + "\n"},
	}
	for _, tt := range tests {
		os.Remove(golden)
		if tt.file != "" {
			if err := os.WriteFile(golden, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := &recorder{TB: t}
		SHA256(r, golden, []byte(tt.data), tt.update)
		if r.failed != tt.fail {
			t.Errorf("%s: failed = %v, want %v", tt.name, r.failed, tt.fail)
		}
		if tt.written != "" {
			if b, _ := os.ReadFile(golden); string(b) != tt.written {
				t.Errorf("%s: golden file holds %q, want %q", tt.name, b, tt.written)
			}
		}
	}
}
