package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Dashboard is the cluster dashboard: it asks every node's admin API for
// GET /status and serves one view of the whole cluster, as an HTML page
// that updates itself (GET /dashboard) and as JSON (GET /dashboard.json).
// The load balancers serve it on their admin port; `piimage lab` serves
// the same page for the nodes of a lab.
//
// Fields are read on every request; set them before serving. Nil fields
// mean the documented defaults.
type Dashboard struct {
	// Local returns this node's own status without a request; nil means
	// the dashboard runs on no node (the lab).
	Local func() Status
	// Nodes are the admin base URLs of the other nodes, such as
	// "http://192.168.1.10:9000".
	Nodes []string
	// Hints name the nodes of Nodes by URL (and give their roles) until
	// they first answer; a node that answered once keeps its hostname and
	// role while it does not answer.
	Hints map[string]NodeHint
	// VIPs are the floating addresses whose holder the view names.
	VIPs []netip.Prefix
	// Expected returns the services a node of role runs, to show the ones
	// that are missing; nil means none are expected.
	Expected func(role string) []string
	// Extra, when set, adds live counters to a node that answered (the
	// balancer's requests and backends, the mirror's lag). It is called
	// concurrently for different nodes and should respect ctx.
	Extra func(ctx context.Context, n *NodeView)
	// Client asks the nodes; nil means a client without keep-alives.
	Client *http.Client
	// Timeout bounds asking one node; 0 means 800ms.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Title heads the page; "" means "piimage cluster".
	Title string

	mu    sync.Mutex
	prev  map[string]sample   // request counters by node, for rates
	seen  map[string]NodeHint // nodes by URL, from earlier answers
	cache *ClusterView
	at    time.Time
}

// NodeHint is what the dashboard shows of a node that does not answer.
type NodeHint struct{ Name, Role string }

// sample is one reading of a node's request counter.
type sample struct {
	at time.Time
	n  uint64
}

// ClusterView is the body of GET /dashboard.json.
type ClusterView struct {
	Title string    `json:"title"`
	Time  time.Time `json:"time"`
	// VIPs names who holds each floating address; more than one holder is
	// a split brain, none means the site is down.
	VIPs []VIPView `json:"vips"`
	// Nodes are sorted load balancers first, then by name.
	Nodes []NodeView `json:"nodes"`
	// Healthy counts the nodes that answered with every service healthy.
	Healthy int `json:"healthy"`
}

// VIPView is one floating address and the nodes that carry it.
type VIPView struct {
	Address string   `json:"address"`
	Holders []string `json:"holders"`
}

// NodeView is one node as the dashboard shows it.
type NodeView struct {
	// Name is the node's hostname, or its URL's host until it answers.
	Name string `json:"name"`
	URL  string `json:"url"`
	Role string `json:"role"`
	// Reachable reports whether the node answered; Error says why not.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Healthy reports whether it answered and every service (and none is
	// missing) is healthy; Problems lists what is not.
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
	// Addresses are the node's interface addresses; HoldsVIP lists the
	// floating addresses among them.
	Addresses []Address     `json:"addresses"`
	HoldsVIP  []string      `json:"holds_vip,omitempty"`
	Services  []ServiceView `json:"services"`
	Board     string        `json:"board,omitempty"`
	Version   string        `json:"version,omitempty"`
	Slot      string        `json:"slot,omitempty"`
	// Slots is the node's per-slot image information as its /status
	// reports it, when it does.
	Slots         json.RawMessage `json:"slots,omitempty"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	// Requests is a balancer's request counter and RequestRate the
	// requests per second since the previous view; nil when unknown.
	Requests    *uint64  `json:"requests,omitempty"`
	RequestRate *float64 `json:"request_rate,omitempty"`
	// Backends is a balancer's view of its backends.
	Backends []BackendView `json:"backends,omitempty"`
	// MirrorLagSeconds is how far a web node's mirror is behind; nil when
	// unknown.
	MirrorLagSeconds *float64 `json:"mirror_lag_seconds,omitempty"`
	// Latency is how long the node took to answer /status.
	LatencyMillis float64 `json:"latency_ms"`
}

// ServiceView is one supervised service of a node.
type ServiceView struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Health   string `json:"health"`
	Restarts int    `json:"restarts"`
	Healthy  bool   `json:"healthy"`
}

// BackendView is one backend as a balancer sees it.
type BackendView struct {
	Name     string `json:"name"`
	Up       bool   `json:"up"`
	Usable   bool   `json:"usable"`
	Requests uint64 `json:"requests"`
}

// cacheFor is how long one view answers every request: browsers polling
// at once cost the nodes one round of /status.
const cacheFor = 400 * time.Millisecond

// View returns the cluster view, asking every node (or reusing a view
// younger than 400ms).
func (d *Dashboard) View(ctx context.Context) ClusterView {
	now := d.now()
	d.mu.Lock()
	if d.cache != nil && now.Sub(d.at) < cacheFor && now.Sub(d.at) >= 0 {
		v := *d.cache
		d.mu.Unlock()
		return v
	}
	d.mu.Unlock()

	views := make([]NodeView, len(d.Nodes))
	var wg sync.WaitGroup
	for i, u := range d.Nodes {
		wg.Go(func() { views[i] = d.ask(ctx, u) })
	}
	wg.Wait()
	if d.Local != nil {
		st := d.Local()
		raw, _ := json.Marshal(st)
		local := NodeView{Name: st.Hostname, URL: "", LatencyMillis: 0}
		fillNode(&local, st, raw)
		if d.Extra != nil {
			d.Extra(ctx, &local)
		}
		views = append([]NodeView{local}, views...)
	}
	v := ClusterView{Title: d.title(), Time: d.now(), Nodes: views}
	d.finish(&v)

	d.mu.Lock()
	d.cache, d.at = &v, now
	d.mu.Unlock()
	return v
}

// ask reads one node's /status and its extras.
func (d *Dashboard) ask(ctx context.Context, base string) NodeView {
	n := NodeView{URL: base, Addresses: []Address{}, Services: []ServiceView{}}
	n.Name, n.Role = d.nameOf(base)
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 800 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	st, raw, err := d.fetch(ctx, strings.TrimSuffix(base, "/")+"/status")
	n.LatencyMillis = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		n.Error = err.Error()
		return n
	}
	fillNode(&n, st, raw)
	d.mu.Lock()
	if d.seen == nil {
		d.seen = map[string]NodeHint{}
	}
	d.seen[base] = NodeHint{n.Name, n.Role}
	d.mu.Unlock()
	if d.Extra != nil {
		d.Extra(ctx, &n)
	}
	return n
}

// nameOf names the node at base, and its role when known, while it does
// not answer.
func (d *Dashboard) nameOf(base string) (name, role string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k, ok := d.seen[base]; ok {
		return k.Name, k.Role
	}
	if k, ok := d.Hints[base]; ok && k.Name != "" {
		return k.Name, k.Role
	}
	return hostOf(base), ""
}

func (d *Dashboard) fetch(ctx context.Context, url string) (Status, []byte, error) {
	var st Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, nil, err
	}
	c := d.Client
	if c == nil {
		c = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	resp, err := c.Do(req)
	if err != nil {
		return st, nil, fmt.Errorf("asking %s: %w", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("decoding %s: %w", url, err)
	}
	return st, raw, nil
}

// unwrapURLError drops the *url.Error wrapper, which repeats the URL.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// fillNode copies a node's status into its view.
func fillNode(n *NodeView, st Status, raw []byte) {
	n.Reachable = true
	if st.Hostname != "" {
		n.Name = st.Hostname
	}
	n.Role, n.Board, n.Version, n.Slot, n.UptimeSeconds = st.Role, st.Board, st.Version, st.Slot, st.UptimeSeconds
	n.Addresses = append([]Address{}, st.Addresses...)
	n.Services = []ServiceView{}
	for _, s := range st.Services {
		n.Services = append(n.Services, ServiceView{Name: s.Name, State: s.State, Health: s.Health, Restarts: s.Restarts, Healthy: s.Healthy()})
	}
	var extra struct {
		Slots json.RawMessage `json:"slots"`
	}
	if json.Unmarshal(raw, &extra) == nil && len(extra.Slots) > 0 && string(extra.Slots) != "null" {
		n.Slots = extra.Slots
	}
}

// finish computes what needs every node: VIP holders, health, rates and
// the order.
func (d *Dashboard) finish(v *ClusterView) {
	for _, p := range d.VIPs {
		vv := VIPView{Address: p.Addr().String(), Holders: []string{}}
		for i := range v.Nodes {
			n := &v.Nodes[i]
			for _, a := range n.Addresses {
				if pa, err := netip.ParsePrefix(a.Address); err == nil && pa.Addr() == p.Addr() {
					vv.Holders = append(vv.Holders, n.Name)
					n.HoldsVIP = append(n.HoldsVIP, p.Addr().String())
					break
				}
			}
		}
		v.VIPs = append(v.VIPs, vv)
	}
	d.mu.Lock()
	if d.prev == nil {
		d.prev = map[string]sample{}
	}
	for i := range v.Nodes {
		n := &v.Nodes[i]
		d.health(n)
		if n.Healthy {
			v.Healthy++
		}
		if n.Requests == nil {
			continue
		}
		cur := sample{at: v.Time, n: *n.Requests}
		if p, ok := d.prev[n.Name]; ok && cur.at.After(p.at) && cur.n >= p.n {
			r := float64(cur.n-p.n) / cur.at.Sub(p.at).Seconds()
			n.RequestRate = &r
		}
		d.prev[n.Name] = cur
	}
	d.mu.Unlock()
	sort.SliceStable(v.Nodes, func(i, j int) bool {
		a, b := v.Nodes[i], v.Nodes[j]
		if ra, rb := roleRank(a.Role), roleRank(b.Role); ra != rb {
			return ra < rb
		}
		return a.Name < b.Name
	})
}

// health sets n.Healthy and n.Problems.
func (d *Dashboard) health(n *NodeView) {
	n.Problems = nil
	if !n.Reachable {
		n.Problems = append(n.Problems, "unreachable")
		n.Healthy = false
		return
	}
	have := map[string]bool{}
	for _, s := range n.Services {
		have[s.Name] = true
		if !s.Healthy {
			n.Problems = append(n.Problems, fmt.Sprintf("%s %s (%s)", s.Name, s.State, s.Health))
		}
	}
	if d.Expected != nil {
		for _, name := range d.Expected(n.Role) {
			if !have[name] {
				n.Problems = append(n.Problems, name+" not running (not in this image?)")
			}
		}
	}
	for _, b := range n.Backends {
		if !b.Up {
			n.Problems = append(n.Problems, "backend "+b.Name+" down")
		}
	}
	n.Healthy = len(n.Problems) == 0
}

func roleRank(role string) int {
	switch role {
	case "lbmaster":
		return 0
	case "lbbackup":
		return 1
	case "web":
		return 2
	}
	return 3
}

// hostOf returns the host of an admin base URL, for a node that has not
// answered yet.
func hostOf(base string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (d *Dashboard) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dashboard) title() string {
	if d.Title != "" {
		return d.Title
	}
	return "piimage cluster"
}

// Mount adds GET /dashboard and GET /dashboard.json under prefix ("" or
// "/lab") to mux.
func (d *Dashboard) Mount(mux *http.ServeMux, prefix string) {
	mux.HandleFunc("GET "+prefix+"/dashboard", d.servePage)
	mux.HandleFunc("GET "+prefix+"/dashboard.json", d.serveJSON)
}

func (d *Dashboard) serveJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(d.View(r.Context()))
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	v := d.View(r.Context())
	initial, err := json.Marshal(v) // escapes <, > and &: safe inside <script>
	if err != nil {
		http.Error(w, "encoding the view", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Everything is inline: the page works on a network without the
	// internet and loads nothing from elsewhere.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
	writePage(w, v.Title, initial)
}
