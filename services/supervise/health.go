package supervise

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// CheckSocket asks the service behind the unix socket path for GET /health
// and returns nil for a 200 answer, else an error carrying the answer.
func CheckSocket(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://service/health", nil)
	if err != nil {
		return fmt.Errorf("checking health: %w", err)
	}
	resp, err := socketClient(path).Do(req)
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

// ControlSocket sends a command to the service behind the unix socket
// path (POST /control/COMMAND?arg=ARG) and returns its one-line answer.
// A refusal comes back as an error carrying the service's reason.
func ControlSocket(ctx context.Context, path, command, arg string) (string, error) {
	u := "http://service/control/" + url.PathEscape(command) + "?arg=" + url.QueryEscape(arg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", fmt.Errorf("sending %s: %w", command, err)
	}
	resp, err := socketClient(path).Do(req)
	if err != nil {
		return "", fmt.Errorf("sending %s: %w", command, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		if msg == "" {
			msg = resp.Status
		}
		return "", &ControlError{Status: resp.StatusCode, Msg: msg}
	}
	return msg, nil
}

// ControlError is a service's refusal of a command: Status is the HTTP
// status of its answer (404: no such command or no commands at all).
type ControlError struct {
	Status int
	Msg    string
}

func (e *ControlError) Error() string { return e.Msg }

// socketClient is an HTTP client whose every request goes to the unix
// socket path, without keep-alives.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}
