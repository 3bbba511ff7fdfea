package supervise

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// CheckSocket asks the service behind the unix socket path for GET /health
// and returns nil for a 200 answer, else an error carrying the answer.
func CheckSocket(ctx context.Context, path string) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://service/health", nil)
	if err != nil {
		return fmt.Errorf("checking health: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("checking health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if msg == "" {
			msg = resp.Status
		}
		return fmt.Errorf("unhealthy: %s", msg)
	}
	return nil
}
