package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/node"
)

// Dashboard returns the cluster dashboard of the lab: every node's
// /status and the load balancers' counters, read from the client
// namespace.
func (l *Lab) Dashboard() *admin.Dashboard { return l.dashboard(nil) }

// dashboard is Dashboard, with the mirror lag of replicas when probe is
// not nil.
func (l *Lab) dashboard(probe *mirrorProbe) *admin.Dashboard {
	p := l.State.Plan
	var urls []string
	hints := map[string]admin.NodeHint{}
	for _, n := range p.Nodes {
		urls = append(urls, n.AdminURL())
		hints[n.AdminURL()] = admin.NodeHint{Name: n.Host, Role: n.Role}
	}
	return &admin.Dashboard{
		Title:    "piimage lab " + p.Name,
		Nodes:    urls,
		Hints:    hints,
		VIPs:     p.VIPs,
		Expected: node.RoleServices,
		Client:   &http.Client{Transport: l.Transport()},
		Extra: func(ctx context.Context, v *admin.NodeView) {
			pn, ok := p.Node(v.Name)
			if ok && probe != nil && pn.MirrorPrimary != "" && pn.MirrorPrimary != pn.Host {
				if lag, ok := probe.lagOf(ctx, l, pn); ok {
					secs := lag.Seconds()
					v.MirrorLagSeconds = &secs
				}
			}
			if !ok || !pn.IsLB() {
				return
			}
			m, err := l.metrics(ctx, pn)
			if err != nil {
				return
			}
			req := m.Requests
			v.Requests = &req
			v.Backends = m.Backends
		},
	}
}

// DashboardHandler serves the lab's dashboard at / (GET /dashboard and
// /dashboard.json), and every node's admin API at /node/HOST/ (so a load
// balancer's own dashboard is /node/lbmaster/dashboard), proxied into the
// client namespace.
func (l *Lab) DashboardHandler() http.Handler { return l.dashboardHandler(nil) }

func (l *Lab) dashboardHandler(probe *mirrorProbe) http.Handler {
	mux := http.NewServeMux()
	l.dashboard(probe).Mount(mux, "")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusFound)
	})
	for _, n := range l.State.Plan.Nodes {
		target, _ := url.Parse(n.AdminURL())
		prefix := "/node/" + n.Host
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, prefix)
				pr.Out.URL.RawPath = ""
				if pr.Out.URL.Path == "" {
					pr.Out.URL.Path = "/"
				}
			},
			Transport: l.Transport(),
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				http.Error(w, fmt.Sprintf("%s does not answer: %v", n.Host, err), http.StatusBadGateway)
			},
		}
		// Read-only: the proxy never forwards POST /reboot or the like.
		mux.Handle("GET "+prefix+"/", rp)
	}
	return mux
}

// ListenDashboard listens for the dashboard on addr, which must be a
// loopback address: the lab's nodes are reachable from this machine only
// through the dashboard, and only from this machine.
func ListenDashboard(ctx context.Context, addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("dashboard address %q: must be a loopback address such as 127.0.0.1:8377", addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the dashboard: %w", err)
	}
	return ln, nil
}

// ServeDashboard serves DashboardHandler on ln until ctx is done. Meanwhile
// it writes a probe file into the mirror primary's web root every second
// and reads it back from the replicas, to show their mirror lag.
func (l *Lab) ServeDashboard(ctx context.Context, ln net.Listener) error {
	probe := newMirrorProbe(l.State.Plan)
	if probe != nil {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go probe.run(pctx)
	}
	srv := &http.Server{Handler: l.dashboardHandler(probe), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// run stamps the probe file every second until ctx is done, then removes
// it.
func (m *mirrorProbe) run(ctx context.Context) {
	defer m.remove()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.write()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lagOf reads the replica's copy of the probe over HTTP and returns its
// lag; false when the replica does not serve one.
func (m *mirrorProbe) lagOf(ctx context.Context, l *Lab, replica PlanNode) (time.Duration, bool) {
	b, code, err := l.get(ctx, replica.WebURL+"/"+MirrorProbeFile, 500*time.Millisecond)
	if err != nil || code != http.StatusOK {
		return 0, false
	}
	seen, err := parseProbe(b)
	if err != nil {
		return 0, false
	}
	return m.lag(seen), true
}
