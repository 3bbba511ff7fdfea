package fat32

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Name handling.
//
// Every name is stored as an 8.3 short entry. A name that is already a valid
// upper-case 8.3 name (BOOTCODE.BIN) gets only that entry. Any other name gets
// VFAT long-name entries holding the exact name in UTF-16 plus an upper-case
// 8.3 alias: config.txt becomes CONFIG.TXT with a long name "config.txt",
// vc4-kms-v3d.dtbo becomes VC4-KM~1.DTB. This is what Linux does with its
// default shortname=mixed; we never use the NT lower-case flags (byte 12), so
// a reader that ignores long names, like the Pi firmware matching
// case-insensitively on the alias, still finds CONFIG.TXT.

// maxLongName is the longest long name in UTF-16 code units.
const maxLongName = 255

// charsPerLFN is the number of UTF-16 code units one long-name entry holds.
const charsPerLFN = 13

// validateName reports why name cannot be a FAT long name, or nil.
func validateName(name string) error {
	if name == "" || name == "." || name == ".." {
		return errors.New("invalid name")
	}
	if !utf8.ValidString(name) {
		return errors.New("name is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("character %q is not allowed in FAT names", r)
		}
	}
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		// Windows and Linux strip trailing dots and spaces, so the name could not be found.
		return errors.New("FAT names cannot end in a dot or a space")
	}
	if n := len(utf16.Encode([]rune(name))); n > maxLongName {
		return fmt.Errorf("name is %d UTF-16 units long, FAT allows %d", n, maxLongName)
	}
	return nil
}

// isShortChar reports whether c may appear in an 8.3 name we write.
// Lower-case letters, spaces and bytes above 0x7f are legal in some
// places on disk but we never write them.
func isShortChar(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'()-@^_`{}~", c) >= 0
}

// shortName parses an exact upper-case 8.3 name ("CONFIG.TXT") into its
// 11-byte directory form. ok is false if name is not such a name.
func shortName(name string) (sn [11]byte, ok bool) {
	base, ext, hasDot := strings.Cut(name, ".")
	if len(base) < 1 || len(base) > 8 || len(ext) > 3 || (hasDot && ext == "") {
		return sn, false
	}
	for i := range len(base) {
		if !isShortChar(base[i]) {
			return sn, false
		}
	}
	for i := range len(ext) {
		if !isShortChar(ext[i]) {
			return sn, false
		}
	}
	for i := range sn {
		sn[i] = ' '
	}
	copy(sn[:8], base)
	copy(sn[8:], ext)
	return sn, true
}

// basis is the lossy upper-case 8.3 form of a long name before a numeric tail is added.
type basis struct {
	base string // 1..8 characters
	ext  string // 0..3 characters
}

// basisName derives the basis of the short alias of a long name, following
// the basis-name rules of the FAT specification: upper-case, drop spaces and
// leading dots, use the text after the last dot as extension, replace
// characters an 8.3 name cannot hold with '_', truncate to 8 and 3.
func basisName(name string) basis {
	up := upperASCII(strings.TrimLeft(name, "."))
	base, ext := up, ""
	if i := strings.LastIndexByte(up, '.'); i >= 0 {
		base, ext = up[:i], up[i+1:]
	}
	b := shortChars(base, 8)
	if b == "" {
		b = "_"
	}
	return basis{base: b, ext: shortChars(ext, 3)}
}

// shortChars maps s to at most max 8.3 characters, dropping spaces and dots
// and replacing anything else not allowed with '_' (one per rune).
func shortChars(s string, max int) string {
	var sb strings.Builder
	for _, r := range s {
		if sb.Len() == max {
			break
		}
		switch {
		case r == ' ' || r == '.':
		case r < utf8.RuneSelf && isShortChar(byte(r)):
			sb.WriteByte(byte(r))
		default:
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

// upperASCII upper-cases the ASCII letters of s and leaves everything else.
func upperASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// aliaser hands out unique short names within one directory in linear time.
type aliaser struct {
	used map[[11]byte]bool
	// next is the next numeric tail to try per (truncated base, extension, digit count).
	next map[string]int
	// probes counts candidate names tried, to test that aliasing stays linear.
	probes int
}

func newAliaser(n int) *aliaser {
	return &aliaser{used: make(map[[11]byte]bool, n), next: make(map[string]int)}
}

// reserve marks sn as taken and reports whether it was free.
func (a *aliaser) reserve(sn [11]byte) bool {
	if a.used[sn] {
		return false
	}
	a.used[sn] = true
	return true
}

// tailed returns a free alias "BASE~N.EXT" for b, N from 1 to 999999.
func (a *aliaser) tailed(b basis) ([11]byte, error) {
	limit := 1
	for digits := 1; digits <= 6; digits++ {
		limit *= 10
		prefix := b.base
		if max := 8 - 1 - digits; len(prefix) > max {
			prefix = prefix[:max]
		}
		key := prefix + "." + b.ext + "." + strconv.Itoa(digits)
		n := a.next[key]
		if n < limit/10 {
			n = limit / 10
		}
		for ; n < limit; n++ {
			sn, _ := shortName(prefix + "~" + strconv.Itoa(n) + dotExt(b.ext))
			a.probes++
			if a.reserve(sn) {
				a.next[key] = n + 1
				return sn, nil
			}
		}
		a.next[key] = limit
	}
	return [11]byte{}, fmt.Errorf("no free short name for %s.%s", b.base, b.ext)
}

func dotExt(ext string) string {
	if ext == "" {
		return ""
	}
	return "." + ext
}

// checksum is the short-name checksum stored in every long-name entry.
func checksum(sn [11]byte) byte {
	var sum byte
	for _, c := range sn {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// lfnEntries encodes the long-name entries for name, in on-disk order (the
// entry with the highest sequence number first), each 32 bytes.
func lfnEntries(name string, sn [11]byte) []byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + charsPerLFN - 1) / charsPerLFN
	chars := make([]uint16, n*charsPerLFN)
	copy(chars, u)
	for i := len(u); i < len(chars); i++ {
		if i == len(u) {
			chars[i] = 0x0000
		} else {
			chars[i] = 0xFFFF
		}
	}
	sum := checksum(sn)
	out := make([]byte, 0, n*dirEntrySize)
	for seq := n; seq >= 1; seq-- {
		var e [dirEntrySize]byte
		e[0] = byte(seq)
		if seq == n {
			e[0] |= lfnLast
		}
		e[11] = attrLFN
		e[13] = sum
		part := chars[(seq-1)*charsPerLFN : seq*charsPerLFN]
		for i, c := range part {
			off := lfnCharOffset[i]
			e[off] = byte(c)
			e[off+1] = byte(c >> 8)
		}
		out = append(out, e[:]...)
	}
	return out
}

// lfnCharOffset is the byte offset of each of the 13 characters in a long-name entry.
var lfnCharOffset = [charsPerLFN]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

// lfnCount is the number of long-name entries name needs.
func lfnCount(name string) int {
	return (len(utf16.Encode([]rune(name))) + charsPerLFN - 1) / charsPerLFN
}

// displayShort formats an 11-byte short name as "NAME.EXT", applying the NT
// lower-case flags of byte 12 of the entry.
func displayShort(sn [11]byte, ntFlags byte) string {
	base := strings.TrimRight(string(sn[:8]), " ")
	ext := strings.TrimRight(string(sn[8:]), " ")
	if len(base) > 0 && base[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	if ntFlags&ntLowerBase != 0 {
		base = strings.ToLower(base)
	}
	if ntFlags&ntLowerExt != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return latin1(base)
	}
	return latin1(base) + "." + latin1(ext)
}

// latin1 turns bytes above 0x7f (code page bytes we cannot map without a
// table) into valid UTF-8 by reading them as Latin-1.
func latin1(s string) string {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			var sb strings.Builder
			for j := range len(s) {
				sb.WriteRune(rune(s[j]))
			}
			return sb.String()
		}
	}
	return s
}
