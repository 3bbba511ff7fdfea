// Package rollout pushes signed images to nodes over their admin API: one
// node (Push, behind piimage update) or a whole cluster one node at a
// time (Run, behind piimage rollout and the lab's rolling-update
// scenario), handing the VIP over before the master load balancer
// reboots and draining each web node from the balancers before it does.
package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/piimage/piimage/services/admin"
)

// DialFunc opens a connection, e.g. from inside a network namespace.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Client talks to one node's authenticated admin API over HTTPS, pinning
// the cluster's certificate and sending its token.
type Client struct {
	// Base is https://IP:PORT.
	Base  string
	token string
	http  *http.Client
}

// NewClient returns a client for node (IP or IP:PORT, port 9000 by
// default) with the cluster credential cred. dial, when not nil, opens the
// connections.
func NewClient(node string, cred *admin.ClusterCredential, dial DialFunc) (*Client, error) {
	if _, _, err := net.SplitHostPort(node); err != nil {
		node = net.JoinHostPort(node, "9000")
	}
	pin, err := cred.Pin()
	if err != nil {
		return nil, err
	}
	return &Client{
		Base:  "https://" + node,
		token: cred.Token,
		http: &http.Client{Transport: &http.Transport{
			DialContext:         dial,
			TLSClientConfig:     admin.ClientTLSConfig(pin),
			TLSHandshakeTimeout: 10 * time.Second,
			DisableKeepAlives:   true,
		}},
	}, nil
}

// Do sends one request with the token.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.http.Do(req)
}

// GetJSON GETs path into v.
func (c *Client) GetJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

// Command sends a runtime command to one of the node's services (POST
// /services/SERVICE/COMMAND?arg=ARG) and returns its answer.
func (c *Client) Command(ctx context.Context, service, command, arg string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p := "/services/" + url.PathEscape(service) + "/" + url.PathEscape(command) + "?arg=" + url.QueryEscape(arg)
	resp, err := c.Do(ctx, "POST", p, nil)
	if err != nil {
		return "", fmt.Errorf("%s %s on %s: %w", service, command, c.Base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s on %s: %s: %s", service, command, c.Base, resp.Status, msg)
	}
	return msg, nil
}
