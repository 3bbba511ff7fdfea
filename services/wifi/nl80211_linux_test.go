package wifi

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestConstants checks the codec's nl80211 numbers against x/sys/unix,
// which generates them from the kernel's headers.
func TestConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"CTRL_CMD_GETFAMILY", ctrlCmdGetFamily, unix.CTRL_CMD_GETFAMILY},
		{"CTRL_ATTR_FAMILY_ID", ctrlAttrFamilyID, unix.CTRL_ATTR_FAMILY_ID},
		{"CTRL_ATTR_FAMILY_NAME", ctrlAttrFamilyName, unix.CTRL_ATTR_FAMILY_NAME},
		{"CTRL_ATTR_MCAST_GROUPS", ctrlAttrMcastGrps, unix.CTRL_ATTR_MCAST_GROUPS},
		{"CTRL_ATTR_MCAST_GRP_NAME", ctrlAttrMcastName, unix.CTRL_ATTR_MCAST_GRP_NAME},
		{"CTRL_ATTR_MCAST_GRP_ID", ctrlAttrMcastID, unix.CTRL_ATTR_MCAST_GRP_ID},
		{"GENL_ID_CTRL", genlIDCtrl, unix.GENL_ID_CTRL},
		{"NLMSG_ERROR", nlmsgError, unix.NLMSG_ERROR},
		{"NLMSG_DONE", nlmsgDone, unix.NLMSG_DONE},
		{"NLM_F_REQUEST", nlmFRequest, unix.NLM_F_REQUEST},
		{"NLM_F_MULTI", nlmFMulti, unix.NLM_F_MULTI},
		{"NLM_F_ACK", nlmFAck, unix.NLM_F_ACK},
		{"NLM_F_DUMP", nlmFDump, unix.NLM_F_DUMP},
		{"NLM_F_CAPPED", nlmFCapped, unix.NLM_F_CAPPED},
		{"NLM_F_ACK_TLVS", nlmFAckTLVs, unix.NLM_F_ACK_TLVS},
		{"NLMSGERR_ATTR_MSG", nlmsgerrMsg, unix.NLMSGERR_ATTR_MSG},
		{"NL80211_CMD_GET_WIPHY", cmdGetWiphy, unix.NL80211_CMD_GET_WIPHY},
		{"NL80211_CMD_GET_INTERFACE", cmdGetInterface, unix.NL80211_CMD_GET_INTERFACE},
		{"NL80211_CMD_GET_STATION", cmdGetStation, unix.NL80211_CMD_GET_STATION},
		{"NL80211_CMD_REQ_SET_REG", cmdReqSetReg, unix.NL80211_CMD_REQ_SET_REG},
		{"NL80211_CMD_CONNECT", cmdConnect, unix.NL80211_CMD_CONNECT},
		{"NL80211_CMD_DISCONNECT", cmdDisconnect, unix.NL80211_CMD_DISCONNECT},
		{"NL80211_ATTR_WIPHY", attrWiphy, unix.NL80211_ATTR_WIPHY},
		{"NL80211_ATTR_IFINDEX", attrIfindex, unix.NL80211_ATTR_IFINDEX},
		{"NL80211_ATTR_IFNAME", attrIfname, unix.NL80211_ATTR_IFNAME},
		{"NL80211_ATTR_MAC", attrMAC, unix.NL80211_ATTR_MAC},
		{"NL80211_ATTR_STA_INFO", attrStaInfo, unix.NL80211_ATTR_STA_INFO},
		{"NL80211_ATTR_REG_ALPHA2", attrRegAlpha2, unix.NL80211_ATTR_REG_ALPHA2},
		{"NL80211_ATTR_IE", attrIE, unix.NL80211_ATTR_IE},
		{"NL80211_ATTR_AUTH_TYPE", attrAuthType, unix.NL80211_ATTR_AUTH_TYPE},
		{"NL80211_ATTR_REASON_CODE", attrReasonCode, unix.NL80211_ATTR_REASON_CODE},
		{"NL80211_ATTR_TIMED_OUT", attrTimedOut, unix.NL80211_ATTR_TIMED_OUT},
		{"NL80211_ATTR_CONTROL_PORT", attrControlPort, unix.NL80211_ATTR_CONTROL_PORT},
		{"NL80211_ATTR_PRIVACY", attrPrivacy, unix.NL80211_ATTR_PRIVACY},
		{"NL80211_ATTR_DISCONNECTED_BY_AP", attrDisconnectedByAP, unix.NL80211_ATTR_DISCONNECTED_BY_AP},
		{"NL80211_ATTR_STATUS_CODE", attrStatusCode, unix.NL80211_ATTR_STATUS_CODE},
		{"NL80211_ATTR_CIPHER_SUITES_PAIRWISE", attrCipherPairwise, unix.NL80211_ATTR_CIPHER_SUITES_PAIRWISE},
		{"NL80211_ATTR_CIPHER_SUITE_GROUP", attrCipherGroup, unix.NL80211_ATTR_CIPHER_SUITE_GROUP},
		{"NL80211_ATTR_WPA_VERSIONS", attrWPAVersions, unix.NL80211_ATTR_WPA_VERSIONS},
		{"NL80211_ATTR_AKM_SUITES", attrAKMSuites, unix.NL80211_ATTR_AKM_SUITES},
		{"NL80211_ATTR_SSID", attrSSID, unix.NL80211_ATTR_SSID},
		{"NL80211_ATTR_SPLIT_WIPHY_DUMP", attrSplitWiphyDump, unix.NL80211_ATTR_SPLIT_WIPHY_DUMP},
		{"NL80211_ATTR_EXT_FEATURES", attrExtFeatures, unix.NL80211_ATTR_EXT_FEATURES},
		{"NL80211_ATTR_TIMEOUT_REASON", attrTimeoutReason, unix.NL80211_ATTR_TIMEOUT_REASON},
		{"NL80211_ATTR_PMK", attrPMK, unix.NL80211_ATTR_PMK},
		{"NL80211_STA_INFO_SIGNAL", staInfoSignal, unix.NL80211_STA_INFO_SIGNAL},
		{"NL80211_AUTHTYPE_OPEN_SYSTEM", authTypeOpenSystem, unix.NL80211_AUTHTYPE_OPEN_SYSTEM},
		{"NL80211_WPA_VERSION_2", wpaVersion2, unix.NL80211_WPA_VERSION_2},
		{"NL80211_EXT_FEATURE_4WAY_HANDSHAKE_STA_PSK", extFeature4WayHandshakeStaPSK, unix.NL80211_EXT_FEATURE_4WAY_HANDSHAKE_STA_PSK},
		{"NL80211_TIMEOUT_SCAN", timeoutScan, unix.NL80211_TIMEOUT_SCAN},
		{"NL80211_TIMEOUT_AUTH", timeoutAuth, unix.NL80211_TIMEOUT_AUTH},
		{"NL80211_TIMEOUT_ASSOC", timeoutAssoc, unix.NL80211_TIMEOUT_ASSOC},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, the kernel's is %d", c.name, c.got, c.want)
		}
	}
}
