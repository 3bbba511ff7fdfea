package wifi

import (
	"fmt"
	"net"
)

// nl80211 numbers (linux/nl80211.h, linux/genetlink.h). They are kernel
// ABI and never change; nl80211_linux_test.go checks them against
// golang.org/x/sys/unix.
const (
	ctrlCmdGetFamily   = 3
	ctrlAttrFamilyID   = 1
	ctrlAttrFamilyName = 2
	ctrlAttrMcastGrps  = 7
	ctrlAttrMcastName  = 1
	ctrlAttrMcastID    = 2

	cmdGetWiphy     = 1
	cmdGetInterface = 5
	cmdGetStation   = 17
	cmdReqSetReg    = 27
	cmdConnect      = 46
	cmdDisconnect   = 48

	attrWiphy            = 1
	attrIfindex          = 3
	attrIfname           = 4
	attrMAC              = 6
	attrStaInfo          = 21
	attrRegAlpha2        = 33
	attrIE               = 42
	attrAuthType         = 53
	attrReasonCode       = 54
	attrTimedOut         = 65
	attrControlPort      = 68
	attrPrivacy          = 70
	attrDisconnectedByAP = 71
	attrStatusCode       = 72
	attrCipherPairwise   = 73
	attrCipherGroup      = 74
	attrWPAVersions      = 75
	attrAKMSuites        = 76
	attrSSID             = 52
	attrSplitWiphyDump   = 174
	attrExtFeatures      = 217
	attrTimeoutReason    = 248
	attrPMK              = 254

	staInfoSignal = 7

	authTypeOpenSystem = 0
	wpaVersion2        = 2

	// extFeature4WayHandshakeStaPSK is NL80211_EXT_FEATURE_4WAY_HANDSHAKE_STA_PSK:
	// the device does the WPA2-PSK 4-way handshake itself, given the PMK.
	extFeature4WayHandshakeStaPSK = 15

	timeoutScan  = 1
	timeoutAuth  = 2
	timeoutAssoc = 3
)

// Suite selectors of IEEE 802.11 (OUI 00-0F-AC), as nl80211 takes them.
const (
	cipherCCMP = 0x000fac04
	akmPSK     = 0x000fac02
)

// rsnIE is the RSN element a WPA2-PSK station sends in its association
// request (IEEE 802.11-2020 9.4.2.24): version 1, group cipher CCMP, one
// pairwise cipher CCMP, one AKM PSK, capabilities 0. Multi-byte counts
// are little-endian in 802.11, whatever the host.
var rsnIE = []byte{
	48, 20, // element id RSN, length
	1, 0, // version
	0x00, 0x0f, 0xac, 4, // group data cipher: CCMP
	1, 0, 0x00, 0x0f, 0xac, 4, // pairwise: 1, CCMP
	1, 0, 0x00, 0x0f, 0xac, 2, // AKM: 1, PSK
	0, 0, // RSN capabilities
}

// ConnectParams is what NL80211_CMD_CONNECT asks for.
type ConnectParams struct {
	// SSID is the network's name, 1 to 32 bytes.
	SSID []byte
	// PMK is the 32-byte pairwise master key of a WPA2-PSK network, nil
	// for an open one.
	PMK []byte
}

// familyMsg asks the generic netlink controller for the nl80211 family.
func familyMsg(seq uint32) genlMsg {
	m := genlMsg{Family: genlIDCtrl, Flags: nlmFRequest | nlmFAck, Seq: seq, Cmd: ctrlCmdGetFamily}
	m.Attrs.str(ctrlAttrFamilyName, "nl80211")
	return m
}

// family is a generic netlink family: its id and multicast groups.
type family struct {
	ID     uint16
	Groups map[string]uint32
}

// parseFamily decodes the controller's answer to familyMsg.
func parseFamily(payload []byte) (family, error) {
	a, err := parseAttrs(payload)
	if err != nil {
		return family{}, err
	}
	id, ok := getU16(a, ctrlAttrFamilyID)
	if !ok {
		return family{}, fmt.Errorf("%w: no family id", errMalformed)
	}
	f := family{ID: id, Groups: map[string]uint32{}}
	err = eachAttr(a[ctrlAttrMcastGrps], func(_ uint16, grp []byte) {
		g, err := parseAttrs(grp)
		if err != nil {
			return
		}
		if gid, ok := getU32(g, ctrlAttrMcastID); ok {
			f.Groups[getString(g, ctrlAttrMcastName)] = gid
		}
	})
	return f, err
}

// connectMsg is NL80211_CMD_CONNECT on ifindex. An open network gets the
// SSID and open-system authentication only. A WPA2-PSK network adds what
// wpa_supplicant and iwd send to a full-MAC driver that offloads the 4-way
// handshake: privacy, WPA version 2, CCMP pairwise and group ciphers, the
// PSK AKM, the RSN element for the association request, the control port
// flag, and the PMK (NL80211_ATTR_PMK). NL80211_ATTR_WANT_1X_4WAY_HS is
// for 802.1X offload and is not sent.
func connectMsg(fam uint16, seq uint32, ifindex uint32, p ConnectParams) genlMsg {
	m := genlMsg{Family: fam, Flags: nlmFRequest | nlmFAck, Seq: seq, Cmd: cmdConnect}
	m.Attrs.u32(attrIfindex, ifindex)
	m.Attrs.bytes(attrSSID, p.SSID)
	m.Attrs.u32(attrAuthType, authTypeOpenSystem)
	if p.PMK == nil {
		return m
	}
	m.Attrs.flag(attrPrivacy)
	m.Attrs.u32(attrWPAVersions, wpaVersion2)
	m.Attrs.u32s(attrCipherPairwise, cipherCCMP)
	m.Attrs.u32(attrCipherGroup, cipherCCMP)
	m.Attrs.u32s(attrAKMSuites, akmPSK)
	m.Attrs.bytes(attrIE, rsnIE)
	m.Attrs.flag(attrControlPort)
	m.Attrs.bytes(attrPMK, p.PMK)
	return m
}

// disconnectMsg is NL80211_CMD_DISCONNECT on ifindex with reason 3
// (deauthenticated because the station is leaving).
func disconnectMsg(fam uint16, seq uint32, ifindex uint32) genlMsg {
	m := genlMsg{Family: fam, Flags: nlmFRequest | nlmFAck, Seq: seq, Cmd: cmdDisconnect}
	m.Attrs.u32(attrIfindex, ifindex)
	m.Attrs.u16(attrReasonCode, 3)
	return m
}

// regMsg is NL80211_CMD_REQ_SET_REG: it asks the wireless core to use the
// country's regulatory domain, which it reads from regulatory.db. (The
// similarly named NL80211_CMD_SET_REG is how CRDA used to hand over
// rules; `iw reg set` sends this one.)
func regMsg(fam uint16, seq uint32, alpha2 string) genlMsg {
	m := genlMsg{Family: fam, Flags: nlmFRequest | nlmFAck, Seq: seq, Cmd: cmdReqSetReg}
	m.Attrs.str(attrRegAlpha2, alpha2)
	return m
}

// interfaceMsg is NL80211_CMD_GET_INTERFACE for ifindex; the answer names
// the wiphy (radio) behind it.
func interfaceMsg(fam uint16, seq uint32, ifindex uint32) genlMsg {
	m := genlMsg{Family: fam, Flags: nlmFRequest | nlmFAck, Seq: seq, Cmd: cmdGetInterface}
	m.Attrs.u32(attrIfindex, ifindex)
	return m
}

// wiphyMsg dumps one wiphy's capabilities, split over several messages as
// modern kernels require for large devices.
func wiphyMsg(fam uint16, seq uint32, wiphy uint32) genlMsg {
	m := genlMsg{Family: fam, Flags: nlmFRequest | nlmFAck | nlmFDump, Seq: seq, Cmd: cmdGetWiphy}
	m.Attrs.u32(attrWiphy, wiphy)
	m.Attrs.flag(attrSplitWiphyDump)
	return m
}

// stationMsg dumps the stations of ifindex: for a connected station
// interface, its access point, with the signal strength.
func stationMsg(fam uint16, seq uint32, ifindex uint32) genlMsg {
	m := genlMsg{Family: fam, Flags: nlmFRequest | nlmFAck | nlmFDump, Seq: seq, Cmd: cmdGetStation}
	m.Attrs.u32(attrIfindex, ifindex)
	return m
}

// parseWiphy returns the wiphy index of a GET_INTERFACE answer.
func parseWiphy(payload []byte) (uint32, error) {
	a, err := parseAttrs(payload)
	if err != nil {
		return 0, err
	}
	w, ok := getU32(a, attrWiphy)
	if !ok {
		return 0, fmt.Errorf("%w: no wiphy in the interface's description", errMalformed)
	}
	return w, nil
}

// extFeatures returns the NL80211_ATTR_EXT_FEATURES bitmap of one part of
// a wiphy dump, or nil when the part has none.
func extFeatures(payload []byte) []byte {
	a, err := parseAttrs(payload)
	if err != nil {
		return nil
	}
	return a[attrExtFeatures]
}

// hasExtFeature reports whether bit n of an ext-features bitmap is set.
func hasExtFeature(bitmap []byte, n int) bool {
	return n/8 < len(bitmap) && bitmap[n/8]&(1<<(n%8)) != 0
}

// parseSignal returns the signal strength (dBm) of a GET_STATION answer.
func parseSignal(payload []byte) (int, bool) {
	a, err := parseAttrs(payload)
	if err != nil {
		return 0, false
	}
	info, err := parseAttrs(a[attrStaInfo])
	if err != nil {
		return 0, false
	}
	s, ok := info[staInfoSignal]
	if !ok || len(s) < 1 {
		return 0, false
	}
	return int(int8(s[0])), true
}

// kernelEvent is a CONNECT or DISCONNECT notification of nl80211's "mlme"
// multicast group.
type kernelEvent struct {
	Cmd     uint8
	Ifindex uint32
	BSSID   net.HardwareAddr
	// Status is the 802.11 status code of a CONNECT (0: success).
	Status        uint16
	TimedOut      bool
	TimeoutReason uint32
	// Reason is the 802.11 reason code of a DISCONNECT.
	Reason uint16
	ByAP   bool
}

// parseEvents decodes the nl80211 CONNECT and DISCONNECT notifications in
// a datagram of family fam; other messages are skipped.
func parseEvents(b []byte, fam uint16) ([]kernelEvent, error) {
	msgs, err := splitMessages(b)
	var out []kernelEvent
	for _, m := range msgs {
		if m.Type != fam {
			continue
		}
		cmd, payload, perr := genlPayload(m)
		if perr != nil {
			err = perr
			continue
		}
		if cmd != cmdConnect && cmd != cmdDisconnect {
			continue
		}
		a, perr := parseAttrs(payload)
		if perr != nil {
			err = perr
			continue
		}
		ev := kernelEvent{Cmd: cmd}
		ev.Ifindex, _ = getU32(a, attrIfindex)
		if mac := a[attrMAC]; len(mac) == 6 {
			ev.BSSID = net.HardwareAddr(append([]byte(nil), mac...))
		}
		ev.Status, _ = getU16(a, attrStatusCode)
		_, ev.TimedOut = a[attrTimedOut]
		ev.TimeoutReason, _ = getU32(a, attrTimeoutReason)
		ev.Reason, _ = getU16(a, attrReasonCode)
		_, ev.ByAP = a[attrDisconnectedByAP]
		if cmd == cmdConnect {
			if _, ok := a[attrStatusCode]; !ok && !ev.TimedOut {
				// A CONNECT without status is malformed; count it
				// as a failure, never as a success.
				ev.Status = 1
			}
		}
		out = append(out, ev)
	}
	return out, err
}

// event turns a kernel notification into the state machine's event.
func (e kernelEvent) event() Event {
	switch {
	case e.Cmd == cmdConnect && e.Status == 0 && !e.TimedOut:
		return Event{Kind: EvConnected, BSSID: e.BSSID}
	case e.Cmd == cmdConnect && e.TimedOut:
		return Event{Kind: EvConnectFailed, Err: fmt.Errorf("connecting timed out: %s", timeoutText(e.TimeoutReason))}
	case e.Cmd == cmdConnect:
		return Event{Kind: EvConnectFailed, Err: fmt.Errorf("the access point refused: status %d (%s)", e.Status, statusText(e.Status))}
	}
	who := "the station"
	if e.ByAP {
		who = "the access point"
	}
	return Event{Kind: EvDisconnected, Err: fmt.Errorf("disconnected by %s: reason %d (%s)", who, e.Reason, reasonText(e.Reason))}
}

func timeoutText(r uint32) string {
	switch r {
	case timeoutScan:
		return "network not found (no access point answered with this SSID)"
	case timeoutAuth:
		return "no answer to authentication"
	case timeoutAssoc:
		return "no answer to association"
	}
	return "no answer"
}

// statusText names the common IEEE 802.11 status codes (9.4.1.9).
func statusText(s uint16) string {
	switch s {
	case 1:
		return "unspecified failure; with WPA2, often a wrong PSK, or the network not found"
	case 10:
		return "capabilities not supported"
	case 12:
		return "denied for another reason"
	case 13:
		return "authentication algorithm not supported"
	case 15:
		return "challenge failure"
	case 17:
		return "access point full"
	case 18:
		return "basic rates not supported"
	case 40, 41, 42, 43:
		return "security parameters refused (the network is not WPA2-PSK with CCMP?)"
	}
	return "see IEEE 802.11 status codes"
}

// reasonText names the common IEEE 802.11 reason codes (9.4.1.7).
func reasonText(r uint16) string {
	switch r {
	case 1:
		return "unspecified"
	case 2:
		return "previous authentication no longer valid"
	case 3:
		return "leaving"
	case 4:
		return "inactivity"
	case 6, 7:
		return "frame from a non-associated station"
	case 8:
		return "disassociated, leaving"
	case 14:
		return "message integrity failure"
	case 15:
		return "4-way handshake timeout: wrong PSK?"
	case 16:
		return "group key handshake timeout"
	case 23:
		return "802.1X authentication failed"
	}
	return "see IEEE 802.11 reason codes"
}
