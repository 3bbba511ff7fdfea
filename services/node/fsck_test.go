package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The superblocks in testdata/ext4 are the 1024 bytes at offset 1024 of
// 16 MiB images made by mke2fs 1.47.0 (`mkfs.ext4 -q -F -e continue -U
// 5b1f6a52-1111-4222-8333-123456789abc -E hash_seed=... -L data`, with
// has_journal and metadata_csum):
//   - clean.sb: as mkfs.ext4 left it;
//   - errors.sb: then `debugfs -w` with "ssv state 3", "ssv error_count 2"
//     and first/last error function, line and time, as the kernel records
//     them;
//   - recover.sb: mounted on a loop device, a file written and fsynced,
//     FS_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH (a power cut), then
//     unmounted: needs_recovery is set;
//   - nojournal-unclean.sb: made with -O ^has_journal, then "ssv state 0".
func goldenSuperblock(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ext4", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != ext4SuperSize {
		t.Fatalf("%s: %d bytes", name, len(b))
	}
	return b
}

// patched returns a copy of sb with f applied and, unless keepSum, the
// checksum recomputed as the kernel and e2fsprogs do after a change.
func patched(sb []byte, keepSum bool, f func(b []byte)) []byte {
	b := append([]byte(nil), sb...)
	f(b)
	if !keepSum {
		binary.LittleEndian.PutUint32(b[sbChecksum:], superblockChecksum(b))
	}
	return b
}

func TestParseSuperblockGolden(t *testing.T) {
	clean, err := parseSuperblock(goldenSuperblock(t, "clean.sb"))
	if err != nil {
		t.Fatal(err)
	}
	if clean.State != ext4StateValid || clean.Compat&ext4CompatHasJournal == 0 || clean.ROCompat&ext4ROCompatMetadataCsm == 0 || !clean.ChecksumOK || clean.ErrorCount != 0 {
		t.Errorf("clean superblock %+v", clean)
	}
	e, err := parseSuperblock(goldenSuperblock(t, "errors.sb"))
	if err != nil {
		t.Fatal(err)
	}
	if e.State != ext4StateValid|ext4StateErrors || e.ErrorCount != 2 || !e.ChecksumOK ||
		e.FirstError.Func != "ext4_lookup" || e.FirstError.Line != 1859 || e.FirstError.Time.IsZero() ||
		e.LastError.Func != "ext4_find_entry" || e.LastError.Line != 1637 {
		t.Errorf("errors superblock %+v", e)
	}
	r, err := parseSuperblock(goldenSuperblock(t, "recover.sb"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Incompat&ext4IncompatRecover == 0 || r.State != ext4StateValid || !r.ChecksumOK {
		t.Errorf("power-cut superblock %+v: want needs_recovery and a valid state", r)
	}
}

func TestDecideFsck(t *testing.T) {
	clean := goldenSuperblock(t, "clean.sb")
	le := binary.LittleEndian
	tests := []struct {
		name   string
		sb     []byte
		action fsckAction
		reason string // a part of the reason
	}{
		{"clean", clean, fsckNone, "clean"},
		{"errors recorded by the kernel", goldenSuperblock(t, "errors.sb"), fsckPreen,
			"the kernel recorded 2 file system errors (first in ext4_lookup:1859 at 2026-11-22T06:40:00Z, last in ext4_find_entry:1637"},
		{"power cut", goldenSuperblock(t, "recover.sb"), fsckReplay, "replays the journal"},
		{"no journal, not cleanly unmounted", goldenSuperblock(t, "nojournal-unclean.sb"), fsckPreen, "not cleanly unmounted"},
		{"error state only", patched(clean, false, func(b []byte) { le.PutUint16(b[sbState:], ext4StateValid|ext4StateErrors) }),
			fsckPreen, "marked as having errors"},
		{"error count only", patched(clean, false, func(b []byte) { le.PutUint32(b[sbErrorCount:], 1) }),
			fsckPreen, "recorded 1 file system errors"},
		{"errors and a journal to replay", patched(goldenSuperblock(t, "recover.sb"), false, func(b []byte) { le.PutUint16(b[sbState:], ext4StateErrors) }),
			fsckPreen, "marked as having errors"},
		{"not valid with a journal", patched(clean, false, func(b []byte) { le.PutUint16(b[sbState:], 0) }), fsckPreen, "not cleanly unmounted"},
		{"needs recovery without a journal", patched(clean, false, func(b []byte) {
			le.PutUint32(b[sbFeatureCompat:], le.Uint32(b[sbFeatureCompat:])&^ext4CompatHasJournal)
			le.PutUint32(b[sbFeatureIncompt:], le.Uint32(b[sbFeatureIncompt:])|ext4IncompatRecover)
		}), fsckPreen, "has no journal"},
		{"bad checksum", patched(clean, true, func(b []byte) { b[0x78] ^= 0xff }), fsckRepair, "checksum is wrong"},
		{"bad checksum without metadata_csum is not checked", patched(clean, true, func(b []byte) {
			le.PutUint32(b[sbFeatureROCompt:], le.Uint32(b[sbFeatureROCompt:])&^ext4ROCompatMetadataCsm)
		}), fsckNone, "clean"},
		{"zeroed", make([]byte, ext4SuperSize), fsckRepair, "no ext4 superblock: magic 0x0000"},
		{"short", clean[:100], fsckRepair, "100 bytes"},
		{"error function without a line or time", patched(clean, false, func(b []byte) {
			le.PutUint32(b[sbErrorCount:], 1)
			copy(b[sbFirstErrorFunc:], "ext4_lookup")
		}), fsckPreen, "recorded 1 file system errors (first in ext4_lookup)"},
		{"odd error function", patched(goldenSuperblock(t, "errors.sb"), false, func(b []byte) { copy(b[sbFirstErrorFunc:], "bad\x01\xff") }),
			fsckPreen, "first in bad??"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := decideFsck(tc.sb)
			if v.Action != tc.action || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("decideFsck = %v %q; want %v with %q", v.Action, v.Reason, tc.action, tc.reason)
			}
		})
	}
}

func TestSuperblockChecksum(t *testing.T) {
	for _, name := range []string{"clean.sb", "errors.sb", "recover.sb", "nojournal-unclean.sb"} {
		b := goldenSuperblock(t, name)
		if got, want := superblockChecksum(b), binary.LittleEndian.Uint32(b[sbChecksum:]); got != want {
			t.Errorf("%s: checksum %#08x, the superblock says %#08x", name, got, want)
		}
	}
}

func TestFsckExit(t *testing.T) {
	for _, tc := range []struct {
		exit       fsckExit
		text       string
		consistent bool
	}{
		{0, "no errors (exit 0)", true},
		{1, "errors corrected (exit 1)", true},
		{3, "errors corrected, reboot needed (exit 3)", true},
		{4, "errors left uncorrected (exit 4)", false},
		{8, "operational error (exit 8)", false},
		{12, "errors left uncorrected, operational error (exit 12)", false},
		{16, "usage error (exit 16)", false},
		{32, "cancelled (exit 32)", false},
		{128, "shared library error (exit 128)", false},
		{64, "unknown status (exit 64)", false},
	} {
		if got := tc.exit.String(); got != tc.text {
			t.Errorf("fsckExit(%d) = %q, want %q", int(tc.exit), got, tc.text)
		}
		if got := tc.exit.consistent(); got != tc.consistent {
			t.Errorf("fsckExit(%d).consistent() = %v", int(tc.exit), got)
		}
	}
}

func TestDataCheckSummary(t *testing.T) {
	for _, tc := range []struct {
		name string
		dc   dataCheck
		want string
	}{
		{"clean", dataCheck{Device: "/dev/sda4", Verdict: fsckVerdict{fsckNone, "clean"}, Mounted: true},
			"data partition /dev/sda4: clean; mounted"},
		{"preen then repair", dataCheck{Device: "/dev/sda4", Verdict: fsckVerdict{fsckPreen, "errors"}, Mounted: true, Runs: []fsckRun{
			{Args: []string{"-f", "-p", "/dev/sda4"}, Exit: 4}, {Args: []string{"-f", "-y", "/dev/sda4"}, Exit: 1}}},
			"data partition /dev/sda4: errors; e2fsck -f -p /dev/sda4: errors left uncorrected (exit 4); e2fsck -f -y /dev/sda4: errors corrected (exit 1); mounted"},
		{"mount failed, read-only", dataCheck{Device: "/dev/sda4", Verdict: fsckVerdict{fsckNone, "clean"}, MountErr: errors.New("EUCLEAN"), Mounted: true, ReadOnly: true,
			Runs: []fsckRun{{Args: []string{"-f", "-y", "/dev/sda4"}, Exit: 4}}},
			"clean; the first mount failed (EUCLEAN); e2fsck -f -y /dev/sda4: errors left uncorrected (exit 4); mounted READ-ONLY"},
		{"no e2fsck", dataCheck{Device: "/dev/sda4", Verdict: fsckVerdict{fsckPreen, "errors"}, NoFsck: true},
			"errors; not checked: the image has no e2fsck; NOT mounted"},
		{"could not run", dataCheck{Device: "d", Verdict: fsckVerdict{fsckRepair, "x"}, Runs: []fsckRun{{Args: []string{"-f", "-y", "d"}, Exit: 8, Err: errors.New("exec format error")}}},
			"e2fsck -f -y d: operational error (exit 8): exec format error; NOT mounted"},
	} {
		if got := tc.dc.Summary(); !strings.Contains(got, tc.want) {
			t.Errorf("%s: Summary() = %q, want it to contain %q", tc.name, got, tc.want)
		}
	}
	if !(&dataCheck{Runs: []fsckRun{{Args: []string{"-f", "-y", "d"}}}}).ranRepair() || (&dataCheck{Runs: []fsckRun{{Args: []string{"-f", "-p", "d"}}}}).ranRepair() {
		t.Error("ranRepair is wrong")
	}
}

func TestLineSayer(t *testing.T) {
	var said []string
	l := &lineSayer{say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }, prefix: "e2fsck: ", max: 3}
	for _, w := range []string{"Pass 1: Checking", " inodes\r\n\nPass 2\nPass 3\n", "Pass 4\nPass 5\nno newline"} {
		l.Write([]byte(w))
	}
	l.Close()
	want := []string{"e2fsck: Pass 1: Checking inodes", "e2fsck: Pass 2", "e2fsck: Pass 3", "e2fsck: (3 more lines not shown)"}
	if strings.Join(said, "|") != strings.Join(want, "|") {
		t.Errorf("said %q\nwant %q", said, want)
	}
	said = nil
	l = &lineSayer{say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }, max: 10}
	l.Write([]byte(strings.Repeat("x", 5000)))
	l.Close()
	if len(said) != 1 || len(said[0]) != 5000 {
		t.Errorf("a 5000-byte line without an end was said as %d lines", len(said))
	}
}

// FuzzDecideFsck feeds arbitrary superblock bytes (from a damaged card)
// to the decision: it never panics, and whatever it cannot read it sends
// to e2fsck -y.
func FuzzDecideFsck(f *testing.F) {
	for _, name := range []string{"clean.sb", "errors.sb", "recover.sb", "nojournal-unclean.sb"} {
		f.Add(goldenSuperblock(f, name))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v := decideFsck(b)
		if v.Reason == "" {
			t.Error("no reason")
		}
		if _, err := parseSuperblock(b); err != nil && v.Action != fsckRepair {
			t.Errorf("unreadable superblock (%v) got %v", err, v.Action)
		}
	})
}
