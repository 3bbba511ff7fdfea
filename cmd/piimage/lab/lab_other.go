//go:build !linux

package lab

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/services/admin"
)

var errUnsupported = errors.New("the lab needs Linux network namespaces")

// Available says why a lab cannot run here: it needs Linux.
func Available() error { return errUnsupported }

// Up is not supported on this system.
func Up(ctx context.Context, cfg Config) (*Lab, error) { return nil, errUnsupported }

// Down is not supported on this system.
func Down(runDir, name string, log io.Writer) error { return errUnsupported }

// Open is not supported on this system.
func Open(runDir, name string) (*Lab, error) { return nil, errUnsupported }

// ListenDashboard is not supported on this system.
func ListenDashboard(ctx context.Context, addr string) (net.Listener, error) {
	return nil, errUnsupported
}

// Lab is an open lab; on this system none can be opened.
type Lab struct {
	State *State
	HTTP  *http.Client
}

func (l *Lab) Close() error                                              { return nil }
func (l *Lab) Transport() *http.Transport                                { return &http.Transport{} }
func (l *Lab) LoadTransport() *http.Transport                            { return &http.Transport{} }
func (l *Lab) WaitReady(ctx context.Context, d time.Duration) error      { return errUnsupported }
func (l *Lab) Fail(host, how string) error                               { return errUnsupported }
func (l *Lab) Heal(host string) error                                    { return errUnsupported }
func (l *Lab) Drain(backend string, drain bool) error                    { return errUnsupported }
func (l *Lab) Dashboard() *admin.Dashboard                               { return &admin.Dashboard{} }
func (l *Lab) DashboardHandler() http.Handler                            { return http.NotFoundHandler() }
func (l *Lab) ServeDashboard(ctx context.Context, ln net.Listener) error { return errUnsupported }
func (l *Lab) Rollout(ctx context.Context, c *Cards, out io.Writer) (rollout.Summary, error) {
	return rollout.Summary{}, errUnsupported
}
func (l *Lab) Report(ctx context.Context, cfg ReportConfig) (*Report, error) {
	return nil, errUnsupported
}
func (l *Lab) Status(ctx context.Context, host string) (admin.Status, error) {
	return admin.Status{}, errUnsupported
}
func (l *Lab) Command(ctx context.Context, node, name string, args ...string) (*exec.Cmd, error) {
	return nil, errUnsupported
}
