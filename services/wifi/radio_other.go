//go:build !linux

package wifi

import (
	"context"
	"errors"
	"log/slog"
)

var errUnsupported = errors.New("Wi-Fi needs Linux (nl80211)")

// NewRadio returns a Radio whose every operation fails: nl80211 is Linux's.
func NewRadio(name string, log *slog.Logger) Radio { return otherRadio{} }

type otherRadio struct{}

func (otherRadio) Setup(context.Context, SetupParams) error     { return errUnsupported }
func (otherRadio) Connect(context.Context, ConnectParams) error { return errUnsupported }
func (otherRadio) Disconnect(context.Context) error             { return nil }
func (otherRadio) Signal(context.Context) (int, error)          { return 0, errUnsupported }
func (otherRadio) Events() <-chan Event                         { return nil }
func (otherRadio) Close() error                                 { return nil }
