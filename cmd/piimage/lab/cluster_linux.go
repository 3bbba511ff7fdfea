package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/piimage/piimage/services/admin"
)

// Status reads host's /status from the client namespace.
func (l *Lab) Status(ctx context.Context, host string) (admin.Status, error) {
	var st admin.Status
	pn, ok := l.State.Plan.Node(host)
	if !ok {
		return st, fmt.Errorf("no node %q in the lab", host)
	}
	b, code, err := l.get(ctx, pn.AdminURL()+"/status", 2*time.Second)
	if err != nil {
		return st, fmt.Errorf("%s /status: %w", host, err)
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("%s /status: HTTP %d", host, code)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s /status: %w", host, err)
	}
	return st, nil
}

// get fetches url from the client namespace, bounded by timeout.
func (l *Lab) get(ctx context.Context, url string, timeout time.Duration) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := l.HTTP.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b, resp.StatusCode, err
}

// notReady says why the lab is not ready yet, or "" when it is: every
// running node answers /status with every service running and healthy,
// one node holds each VIP, and the VIP answers GET / with 200.
func (l *Lab) notReady(ctx context.Context) string {
	p := l.State.Plan
	holders := map[netip.Addr][]string{}
	for _, n := range p.Nodes {
		if !l.State.nodeRunning(n.Host) {
			continue
		}
		st, err := l.Status(ctx, n.Host)
		if err != nil {
			return err.Error()
		}
		if len(st.Services) == 0 {
			return n.Host + " runs no service yet"
		}
		for _, s := range st.Services {
			if !s.Healthy() {
				return fmt.Sprintf("%s: %s is %s (%s)", n.Host, s.Name, s.State, s.Health)
			}
		}
		for _, a := range st.Addresses {
			if pa, err := netip.ParsePrefix(a.Address); err == nil {
				holders[pa.Addr()] = append(holders[pa.Addr()], n.Host)
			}
		}
	}
	for _, v := range p.VIPs {
		if h := holders[v.Addr()]; len(h) != 1 {
			return fmt.Sprintf("VIP %s held by %d nodes %v", v.Addr(), len(h), h)
		}
	}
	if v := p.VIP(); v.IsValid() {
		_, code, err := l.get(ctx, "http://"+v.String()+"/", 2*time.Second)
		if err != nil {
			return fmt.Sprintf("VIP %s: %v", v, err)
		}
		if code != http.StatusOK {
			return fmt.Sprintf("VIP %s: GET / answered %d", v, code)
		}
	}
	return ""
}

// WaitReady waits up to d until the lab is ready (see notReady).
func (l *Lab) WaitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		why := l.notReady(ctx)
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab is not ready after %v: %s", d, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Command returns a command that runs inside node's namespace, or the
// client's for node "client".
func (l *Lab) Command(ctx context.Context, node string, name string, args ...string) (*exec.Cmd, error) {
	ns := l.State.Plan.ClientNS
	argv := []string{"ip", "netns", "exec", ns, name}
	if node != ClientName {
		pn, ok := l.State.Plan.Node(node)
		if !ok {
			return nil, fmt.Errorf("no node %q in the lab (nodes: %s, and %s)", node, strings.Join(l.State.Plan.Hosts(), ", "), ClientName)
		}
		argv[3] = pn.NS
		// With the node's init running, also enter its UTS namespace, so
		// the command sees the node's hostname.
		if p, ok := l.State.Procs[node]; ok && p.alive() {
			if nsenter, err := exec.LookPath("nsenter"); err == nil {
				argv = append([]string{nsenter, "--target", fmt.Sprint(p.PID), "--uts", "--"}, argv...)
			}
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
	cmd.Env = os.Environ()
	return cmd, nil
}

// vipProbe reads the load balancers' eth0 addresses over netlink, cheaply
// enough to poll every few milliseconds.
type vipProbe struct {
	mu      sync.Mutex // a netlink handle serves one request at a time
	hosts   []string
	handles []*netlink.Handle
}

func (l *Lab) newVIPProbe() (*vipProbe, error) {
	p := &vipProbe{}
	for _, n := range l.State.Plan.Nodes {
		if !n.IsLB() {
			continue
		}
		ns, err := netns.GetFromName(n.NS)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("opening %s: %w", n.NS, err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("netlink in %s: %w", n.NS, err)
		}
		p.hosts = append(p.hosts, n.Host)
		p.handles = append(p.handles, h)
	}
	if len(p.hosts) == 0 {
		return nil, errors.New("the lab has no load balancer")
	}
	return p, nil
}

// holders returns the load balancers whose eth0 has vip.
func (p *vipProbe) holders(vip netip.Addr) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for i, h := range p.handles {
		link, err := h.LinkByName("eth0")
		if err != nil {
			continue
		}
		addrs, err := h.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == vip {
				out = append(out, p.hosts[i])
				break
			}
		}
	}
	return out
}

func (p *vipProbe) Close() {
	for _, h := range p.handles {
		h.Close()
	}
}
