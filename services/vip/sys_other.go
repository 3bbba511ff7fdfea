//go:build !linux

package vip

import "errors"

func newSystem() (system, error) {
	return nil, errors.New("vip: VRRP is implemented for Linux only")
}
