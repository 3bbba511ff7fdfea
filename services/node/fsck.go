package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/piimage/piimage/services/admin"
	"hash/crc32"
	"strings"
	"time"
)

// The data partition is ext4 with a journal: after a power cut the kernel
// replays the journal when it mounts it, which is all most unclean
// shutdowns need. What the journal cannot fix (errors the kernel found
// and recorded in the superblock, a damaged superblock, a partition the
// kernel refuses to mount) e2fsck repairs, before the mount. This file
// decides from the superblock's bytes; fsck_linux.go runs e2fsck and
// mounts.

// The ext4 superblock (Linux Documentation/filesystems/ext4, "Super
// Block"): 1024 bytes at byte 1024 of the partition, little-endian.
const (
	ext4SuperOffset = 1024
	ext4SuperSize   = 1024
	ext4Magic       = 0xef53

	sbMagic          = 0x38  // __le16 s_magic
	sbState          = 0x3a  // __le16 s_state
	sbFeatureCompat  = 0x5c  // __le32 s_feature_compat
	sbFeatureIncompt = 0x60  // __le32 s_feature_incompat
	sbFeatureROCompt = 0x64  // __le32 s_feature_ro_compat
	sbChecksumType   = 0x175 // __u8 s_checksum_type
	sbErrorCount     = 0x194 // __le32 s_error_count
	sbFirstErrorTime = 0x198 // __le32 s_first_error_time
	sbFirstErrorFunc = 0x1a8 // __u8 s_first_error_func[32]
	sbFirstErrorLine = 0x1c8 // __le32 s_first_error_line
	sbLastErrorTime  = 0x1cc // __le32 s_last_error_time
	sbLastErrorLine  = 0x1d4 // __le32 s_last_error_line
	sbLastErrorFunc  = 0x1e0 // __u8 s_last_error_func[32]
	sbChecksum       = 0x3fc // __le32 s_checksum

	ext4StateValid  = 0x1 // cleanly unmounted (journal-less file systems clear it while mounted)
	ext4StateErrors = 0x2 // errors detected

	ext4CompatHasJournal    = 0x4
	ext4IncompatRecover     = 0x4   // needs_recovery: the journal holds transactions to replay
	ext4ROCompatMetadataCsm = 0x400 // metadata_csum: the superblock has a crc32c
	ext4ChecksumCRC32C      = 1
)

// fsckAction is what the data partition needs before it is mounted.
type fsckAction int

const (
	fsckNone   fsckAction = iota // clean: mount it
	fsckReplay                   // the journal has transactions: the kernel replays them on mount
	fsckPreen                    // errors recorded or not cleanly unmounted: e2fsck -f -p
	fsckRepair                   // superblock unreadable or damaged: e2fsck -f -y
)

func (a fsckAction) String() string {
	return [...]string{"none", "journal replay", "check (e2fsck -f -p)", "repair (e2fsck -f -y)"}[a]
}

// fsckVerdict is what a superblock says the partition needs, and why.
type fsckVerdict struct {
	Action fsckAction
	Reason string
}

// superblock is the part of an ext4 superblock the check reads.
type superblock struct {
	State                      uint16
	Compat, Incompat, ROCompat uint32
	// ErrorCount and the first and last error are what the kernel
	// recorded since the last e2fsck (which clears them).
	ErrorCount            uint32
	FirstError, LastError ext4Error
	// ChecksumOK is false when the file system has metadata_csum and the
	// superblock's crc32c does not match its bytes.
	ChecksumOK bool
}

// ext4Error is one error the kernel recorded: where in its code and when.
type ext4Error struct {
	Func string
	Line uint32
	Time time.Time
}

func (e ext4Error) String() string {
	if e.Func == "" {
		return ""
	}
	s := e.Func
	if e.Line != 0 {
		s += fmt.Sprintf(":%d", e.Line)
	}
	if !e.Time.IsZero() {
		s += " at " + e.Time.UTC().Format(time.RFC3339)
	}
	return s
}

var errNotExt4 = errors.New("no ext4 superblock")

// parseSuperblock reads the superblock bytes b (the 1024 bytes at offset
// 1024 of the partition).
func parseSuperblock(b []byte) (superblock, error) {
	if len(b) < ext4SuperSize {
		return superblock{}, fmt.Errorf("%w: %d bytes, want %d", errNotExt4, len(b), ext4SuperSize)
	}
	b = b[:ext4SuperSize]
	le := binary.LittleEndian
	if m := le.Uint16(b[sbMagic:]); m != ext4Magic {
		return superblock{}, fmt.Errorf("%w: magic %#04x, want %#04x", errNotExt4, m, ext4Magic)
	}
	sb := superblock{
		State:      le.Uint16(b[sbState:]),
		Compat:     le.Uint32(b[sbFeatureCompat:]),
		Incompat:   le.Uint32(b[sbFeatureIncompt:]),
		ROCompat:   le.Uint32(b[sbFeatureROCompt:]),
		ErrorCount: le.Uint32(b[sbErrorCount:]),
		FirstError: ext4Error{Func: cString(b[sbFirstErrorFunc : sbFirstErrorFunc+32]), Line: le.Uint32(b[sbFirstErrorLine:]), Time: unixTime(le.Uint32(b[sbFirstErrorTime:]))},
		LastError:  ext4Error{Func: cString(b[sbLastErrorFunc : sbLastErrorFunc+32]), Line: le.Uint32(b[sbLastErrorLine:]), Time: unixTime(le.Uint32(b[sbLastErrorTime:]))},
		ChecksumOK: true,
	}
	if sb.ROCompat&ext4ROCompatMetadataCsm != 0 && b[sbChecksumType] == ext4ChecksumCRC32C {
		sb.ChecksumOK = le.Uint32(b[sbChecksum:]) == superblockChecksum(b)
	}
	return sb, nil
}

// superblockChecksum is ext4's superblock checksum: crc32c seeded with
// ~0 over the bytes before s_checksum, without the final inversion.
func superblockChecksum(b []byte) uint32 {
	return ^crc32.Checksum(b[:sbChecksum], crc32.MakeTable(crc32.Castagnoli))
}

// cString returns the bytes of b up to the first NUL, printable only.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, string(b))
}

func unixTime(s uint32) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0)
}

// decideFsck says what the partition whose superblock bytes are b needs
// before it is mounted. Recorded errors come first: a journal replay does
// not fix them.
func decideFsck(b []byte) fsckVerdict {
	sb, err := parseSuperblock(b)
	switch {
	case err != nil:
		return fsckVerdict{fsckRepair, err.Error() + "; e2fsck looks for a backup superblock"}
	case !sb.ChecksumOK:
		return fsckVerdict{fsckRepair, "the superblock's checksum is wrong"}
	case sb.State&ext4StateErrors != 0 || sb.ErrorCount > 0:
		why := "the file system is marked as having errors"
		if sb.ErrorCount > 0 {
			why = fmt.Sprintf("the kernel recorded %d file system errors", sb.ErrorCount)
			if f := sb.FirstError.String(); f != "" {
				why += " (first in " + f
				if l := sb.LastError.String(); l != "" && sb.ErrorCount > 1 {
					why += ", last in " + l
				}
				why += ")"
			}
		}
		return fsckVerdict{fsckPreen, why}
	case sb.Incompat&ext4IncompatRecover != 0 && sb.Compat&ext4CompatHasJournal != 0:
		return fsckVerdict{fsckReplay, "not cleanly unmounted (a power cut?): the kernel replays the journal on mount"}
	case sb.Incompat&ext4IncompatRecover != 0:
		return fsckVerdict{fsckPreen, "marked as needing a journal replay but has no journal"}
	case sb.State&ext4StateValid == 0:
		return fsckVerdict{fsckPreen, "not cleanly unmounted"}
	}
	return fsckVerdict{fsckNone, "clean"}
}

// fsckExit is e2fsck's exit status: a sum of these bits (e2fsck(8)).
type fsckExit int

const (
	fsckCorrected   fsckExit = 1   // file system errors corrected
	fsckRebootNeed  fsckExit = 2   // corrected; reboot needed (a mounted root)
	fsckUncorrected fsckExit = 4   // file system errors left uncorrected
	fsckOperational fsckExit = 8   // operational error
	fsckUsage       fsckExit = 16  // usage or syntax error
	fsckCancelled   fsckExit = 32  // cancelled by the user
	fsckLibrary     fsckExit = 128 // shared library error
)

func (e fsckExit) String() string {
	if e == 0 {
		return "no errors (exit 0)"
	}
	var parts []string
	for _, f := range []struct {
		bit  fsckExit
		what string
	}{
		{fsckCorrected, "errors corrected"},
		{fsckRebootNeed, "reboot needed"},
		{fsckUncorrected, "errors left uncorrected"},
		{fsckOperational, "operational error"},
		{fsckUsage, "usage error"},
		{fsckCancelled, "cancelled"},
		{fsckLibrary, "shared library error"},
	} {
		if e&f.bit != 0 {
			parts = append(parts, f.what)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "unknown status")
	}
	return fmt.Sprintf("%s (exit %d)", strings.Join(parts, ", "), int(e))
}

// consistent reports whether e2fsck left the file system consistent: no
// errors, or all of them corrected.
func (e fsckExit) consistent() bool { return e&^(fsckCorrected|fsckRebootNeed) == 0 }

// fsckRun is one run of e2fsck.
type fsckRun struct {
	Args []string
	Exit fsckExit
	// Err says why e2fsck could not run or ended on a signal; Exit then
	// includes fsckOperational.
	Err error
}

func (r fsckRun) String() string {
	s := "e2fsck " + strings.Join(r.Args, " ") + ": " + r.Exit.String()
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// dataCheck is what checking and mounting the data partition found and
// did.
type dataCheck struct {
	Device  string
	Verdict fsckVerdict
	// NoFsck is set when the image has no e2fsck: nothing was checked.
	NoFsck bool
	Runs   []fsckRun
	// MountErr is the first mount's error when it failed and e2fsck
	// repaired before a second try.
	MountErr error
	Mounted  bool
	// ReadOnly is set when errors were left uncorrected: the partition is
	// mounted read-only so that writing cannot damage it further.
	ReadOnly bool
}

// ranRepair reports whether e2fsck -y ran.
func (c *dataCheck) ranRepair() bool {
	for _, r := range c.Runs {
		for _, a := range r.Args {
			if a == "-y" {
				return true
			}
		}
	}
	return false
}

// Status is the check as /status reports it.
func (c *dataCheck) Status() *admin.DataStatus {
	st := &admin.DataStatus{Summary: c.Summary(), Checked: len(c.Runs) > 0, Mounted: c.Mounted, ReadOnly: c.ReadOnly}
	for _, r := range c.Runs {
		st.Repaired = st.Repaired || r.Exit&(fsckCorrected|fsckRebootNeed) != 0
	}
	return st
}

// Summary is one line about the check, for the console and the logs.
func (c *dataCheck) Summary() string {
	parts := []string{c.Verdict.Reason}
	if c.NoFsck && c.Verdict.Action >= fsckPreen {
		parts = append(parts, "not checked: the image has no e2fsck")
	}
	if c.MountErr != nil {
		parts = append(parts, "the first mount failed ("+c.MountErr.Error()+")")
	}
	for _, r := range c.Runs {
		parts = append(parts, r.String())
	}
	switch {
	case c.Mounted && c.ReadOnly:
		parts = append(parts, "mounted READ-ONLY: repair it with e2fsck -f from a PC")
	case c.Mounted:
		parts = append(parts, "mounted")
	default:
		parts = append(parts, "NOT mounted")
	}
	return "data partition " + c.Device + ": " + strings.Join(parts, "; ")
}

// lineSayer says every complete line written to it, with prefix, up to
// max lines; Close says the rest of a last line and how many were left
// out.
type lineSayer struct {
	say     func(format string, args ...any)
	prefix  string
	max     int
	n       int
	partial []byte
}

func (l *lineSayer) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 4096 { // a line without end: say it in pieces
		l.line(l.partial)
		l.partial = nil
	}
	return len(p), nil
}

func (l *lineSayer) line(b []byte) {
	b = bytes.TrimRight(b, "\r")
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	if l.n < l.max {
		l.say("%s%s", l.prefix, b)
	}
	l.n++
}

// Close flushes a last line without a newline and says how many lines
// were not shown.
func (l *lineSayer) Close() error {
	if len(l.partial) > 0 {
		l.line(l.partial)
		l.partial = nil
	}
	if l.n > l.max {
		l.say("%s(%d more lines not shown)", l.prefix, l.n-l.max)
	}
	return nil
}
