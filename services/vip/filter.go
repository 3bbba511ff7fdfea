package vip

import (
	"errors"
	"net/netip"
	"slices"
)

// Received is one IPv4 datagram of protocol 112 as the driver read it.
type Received struct {
	// Data is the VRRP message (the IP payload).
	Data []byte
	// Src and Dst are the IP source and destination.
	Src, Dst netip.Addr
	// TTL is the IP TTL the packet arrived with.
	TTL int
}

// Reasons a received packet is dropped, the keys of Stats.Dropped.
const (
	DropTTL       = "ttl"
	DropTruncated = "truncated"
	DropLength    = "length"
	DropVersion   = "version"
	DropType      = "type"
	DropChecksum  = "checksum"
	DropAuth      = "auth"
	DropNoAddrs   = "no-addresses"
	DropVRID      = "vrid"
	DropInterval  = "interval"
	DropAddresses = "addresses"
	DropPeer      = "unknown-peer"
	DropOwn       = "own"
	DropBusy      = "busy"
)

func dropReason(err error) string {
	for _, e := range []struct {
		err    error
		reason string
	}{
		{ErrTruncated, DropTruncated}, {ErrLength, DropLength}, {ErrVersion, DropVersion},
		{ErrType, DropType}, {ErrChecksum, DropChecksum}, {ErrAuth, DropAuth}, {ErrNoAddrs, DropNoAddrs},
	} {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return DropTruncated
}

// classify checks rx against the virtual routers of the interface it came
// in on (RFC 5798 section 7.1, RFC 3768 section 7.1) and returns the index
// of the router it is for and the event, or the reason to drop it.
func classify(rx Received, routers []*Config) (int, AdvertReceived, string) {
	if rx.TTL != TTL {
		return -1, AdvertReceived{}, DropTTL
	}
	p, err := ParseFrom(rx.Data, rx.Src, rx.Dst)
	if err != nil {
		return -1, AdvertReceived{}, dropReason(err)
	}
	i := slices.IndexFunc(routers, func(c *Config) bool { return c.VRID == p.VRID })
	if i < 0 {
		return -1, AdvertReceived{}, DropVRID
	}
	c := routers[i]
	switch {
	case p.Version != c.Version:
		return i, AdvertReceived{}, DropVersion
	case rx.Src == c.Primary:
		return i, AdvertReceived{}, DropOwn
	case len(c.Peers) > 0 && !slices.Contains(c.Peers, rx.Src):
		return i, AdvertReceived{}, DropPeer
	case p.Interval == 0 || (c.Version == 2 && p.Interval != c.Interval):
		// RFC 3768 7.1: the interval must equal ours.
		return i, AdvertReceived{}, DropInterval
	case p.Priority != OwnerPriority && !sameAddrs(p.Addrs, c.Addrs):
		// RFC 5798 7.1: a misconfigured router's packet is dropped
		// unless it comes from the address owner.
		return i, AdvertReceived{}, DropAddresses
	}
	return i, AdvertReceived{Src: rx.Src, Priority: int(p.Priority), Interval: p.Interval}, ""
}

// sameAddrs reports whether got and want hold the same addresses in any order.
func sameAddrs(got []netip.Addr, want []netip.Prefix) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(got, w.Addr()) {
			return false
		}
	}
	return true
}
