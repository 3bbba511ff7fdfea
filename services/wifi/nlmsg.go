package wifi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Generic netlink framing (netlink(7), genetlink): every message is a
// 16-byte nlmsghdr, a 4-byte genlmsghdr and attributes, each a 4-byte
// header (length, type) and its payload padded to 4 bytes. Integers are in
// the host's byte order. The codec opens no sockets: it turns values into
// bytes and back.

// Netlink header constants (linux/netlink.h), spelled out here so that the
// codec compiles on every platform.
const (
	nlmsgHdrLen  = 16
	genlHdrLen   = 4
	nlaHdrLen    = 4
	nlmsgError   = 0x2
	nlmsgDone    = 0x3
	nlmFRequest  = 0x1
	nlmFMulti    = 0x2
	nlmFAck      = 0x4
	nlmFDump     = 0x300 // NLM_F_ROOT | NLM_F_MATCH
	nlaFNested   = 1 << 15
	nlaTypeMask  = 0x3fff
	nlmsgerrMsg  = 1 // NLMSGERR_ATTR_MSG
	nlmFCapped   = 0x100
	nlmFAckTLVs  = 0x200
	genlIDCtrl   = 0x10
	genlVersion1 = 1
)

var native = binary.NativeEndian

// attr is one netlink attribute; nested attributes carry their children
// encoded in Data.
type attr struct {
	Type uint16
	Data []byte
}

// attrs builds a list of attributes.
type attrs []attr

func (a *attrs) bytes(t uint16, b []byte) { *a = append(*a, attr{t, b}) }
func (a *attrs) flag(t uint16)            { *a = append(*a, attr{t, nil}) }
func (a *attrs) u16(t uint16, v uint16) {
	b := make([]byte, 2)
	native.PutUint16(b, v)
	a.bytes(t, b)
}
func (a *attrs) u32(t uint16, v uint32) {
	b := make([]byte, 4)
	native.PutUint32(b, v)
	a.bytes(t, b)
}

// str adds a NUL-terminated string, as NLA_STRING and NLA_NUL_STRING
// policies accept.
func (a *attrs) str(t uint16, s string) { a.bytes(t, append([]byte(s), 0)) }

// u32s adds an array of u32 in one attribute (the cipher and AKM suite
// lists of nl80211).
func (a *attrs) u32s(t uint16, vs ...uint32) {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		native.PutUint32(b[4*i:], v)
	}
	a.bytes(t, b)
}

func align4(n int) int { return (n + 3) &^ 3 }

// encode appends the attributes in wire format to b.
func (a attrs) encode(b []byte) []byte {
	for _, at := range a {
		n := nlaHdrLen + len(at.Data)
		b = native.AppendUint16(b, uint16(n))
		b = native.AppendUint16(b, at.Type)
		b = append(b, at.Data...)
		for range align4(n) - n {
			b = append(b, 0)
		}
	}
	return b
}

// genlMsg is one generic netlink message.
type genlMsg struct {
	Family uint16 // nlmsg_type: the family's id
	Flags  uint16
	Seq    uint32
	Cmd    uint8
	Attrs  attrs
}

// marshal returns m in wire format (port id 0: the kernel fills it).
func (m genlMsg) marshal() []byte {
	b := make([]byte, nlmsgHdrLen, 64)
	b = append(b, m.Cmd, genlVersion1, 0, 0)
	b = m.Attrs.encode(b)
	native.PutUint32(b[0:], uint32(len(b)))
	native.PutUint16(b[4:], m.Family)
	native.PutUint16(b[6:], m.Flags)
	native.PutUint32(b[8:], m.Seq)
	native.PutUint32(b[12:], 0)
	return b
}

// nlMsg is one received netlink message, not yet interpreted.
type nlMsg struct {
	Type  uint16
	Flags uint16
	Seq   uint32
	Data  []byte // after the 16-byte header
}

// errMalformed reports bytes that are not what the kernel sends.
var errMalformed = errors.New("malformed netlink message")

// splitMessages splits a datagram into its netlink messages.
func splitMessages(b []byte) ([]nlMsg, error) {
	var out []nlMsg
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return out, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
		}
		n := int(native.Uint32(b))
		if n < nlmsgHdrLen || n > len(b) {
			return out, fmt.Errorf("%w: length %d of %d bytes", errMalformed, n, len(b))
		}
		out = append(out, nlMsg{
			Type:  native.Uint16(b[4:]),
			Flags: native.Uint16(b[6:]),
			Seq:   native.Uint32(b[8:]),
			Data:  b[nlmsgHdrLen:n],
		})
		if a := align4(n); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	return out, nil
}

// genlPayload returns a generic netlink message's command and attributes.
func genlPayload(m nlMsg) (uint8, []byte, error) {
	if len(m.Data) < genlHdrLen {
		return 0, nil, fmt.Errorf("%w: %d bytes after the netlink header", errMalformed, len(m.Data))
	}
	return m.Data[0], m.Data[genlHdrLen:], nil
}

// parseAttrs decodes a run of attributes into a map by type (the nested
// flag cleared); a type seen twice keeps the last.
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	out := map[uint16][]byte{}
	err := eachAttr(b, func(t uint16, d []byte) { out[t] = d })
	return out, err
}

// eachAttr calls fn for every attribute of b in order.
func eachAttr(b []byte, fn func(t uint16, data []byte)) error {
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return fmt.Errorf("%w: %d trailing attribute bytes", errMalformed, len(b))
		}
		n := int(native.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return fmt.Errorf("%w: attribute length %d of %d bytes", errMalformed, n, len(b))
		}
		fn(native.Uint16(b[2:])&nlaTypeMask, b[nlaHdrLen:n])
		if a := align4(n); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	return nil
}

func getU32(m map[uint16][]byte, t uint16) (uint32, bool) {
	d, ok := m[t]
	if !ok || len(d) < 4 {
		return 0, false
	}
	return native.Uint32(d), true
}

func getU16(m map[uint16][]byte, t uint16) (uint16, bool) {
	d, ok := m[t]
	if !ok || len(d) < 2 {
		return 0, false
	}
	return native.Uint16(d), true
}

// getString returns a string attribute without its trailing NULs.
func getString(m map[uint16][]byte, t uint16) string {
	d := m[t]
	for len(d) > 0 && d[len(d)-1] == 0 {
		d = d[:len(d)-1]
	}
	return string(d)
}

// nlError is a netlink error message: the errno (positive; 0 is an ACK),
// which the Linux side turns into a syscall.Errno.
type nlError struct {
	Errno int32
	// Msg is the kernel's extended ACK text, when it sent one.
	Msg string
}

// parseError decodes an NLMSG_ERROR payload: errno 0 is an ACK.
func parseError(m nlMsg) (nlError, error) {
	if len(m.Data) < 4+nlmsgHdrLen {
		return nlError{}, fmt.Errorf("%w: short error message", errMalformed)
	}
	e := nlError{Errno: -int32(native.Uint32(m.Data))}
	if m.Flags&nlmFAckTLVs == 0 {
		return e, nil
	}
	// The original request follows: its header only when capped.
	off := 4 + nlmsgHdrLen
	if m.Flags&nlmFCapped == 0 {
		off = 4 + int(native.Uint32(m.Data[4:]))
		if off > len(m.Data) || off < 4+nlmsgHdrLen {
			return e, nil
		}
	}
	if align4(off) > len(m.Data) {
		return e, nil
	}
	if a, err := parseAttrs(m.Data[align4(off):]); err == nil {
		e.Msg = getString(a, nlmsgerrMsg)
	}
	return e, nil
}
