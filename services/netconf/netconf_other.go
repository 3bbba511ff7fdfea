//go:build !linux

package netconf

import (
	"errors"
	"net/netip"
)

var errUnsupported = errors.New("configuring interfaces needs Linux")

// Netlink is the netlink Applier; off Linux every method fails.
type Netlink struct{}

// NewNetlink returns an Applier that fails off Linux. h is ignored.
func NewNetlink(h any) *Netlink { return &Netlink{} }

func (*Netlink) Link(string) (bool, bool, error)       { return false, false, errUnsupported }
func (*Netlink) LinkUp(string) error                   { return errUnsupported }
func (*Netlink) Addrs(string) ([]netip.Prefix, error)  { return nil, errUnsupported }
func (*Netlink) AddAddr(string, netip.Prefix) error    { return errUnsupported }
func (*Netlink) DelAddr(string, netip.Prefix) error    { return errUnsupported }
func (*Netlink) DefaultRoutes(string) ([]Route, error) { return nil, errUnsupported }
func (*Netlink) AddDefaultRoute(Route) error           { return errUnsupported }
func (*Netlink) DelDefaultRoute(Route) error           { return errUnsupported }
