package balancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Stats is a point-in-time view of the balancer for the stats page, the
// metrics and the admin API.
type Stats struct {
	Mode, Algorithm string
	Fall, Rise      int
	ConnsNow        int64
	ConnsTotal      uint64
	Requests        uint64
	BadRequests     uint64
	NoBackend       uint64
	BadGateway      uint64
	Timeouts        uint64
	Retries         uint64
	Backends        []BackendStats
}

// Stats returns the balancer's counters and every backend's state.
func (b *Balancer) Stats() Stats {
	cfg := b.cfg.Load()
	s := Stats{
		Mode: cfg.Mode, Algorithm: cfg.Algorithm, Fall: cfg.Check.Fall, Rise: cfg.Check.Rise,
		ConnsNow: b.fe.connsNow.Load(), ConnsTotal: b.fe.connsTotal.Load(), Requests: b.fe.requests.Load(),
		BadRequests: b.fe.badRequests.Load(), NoBackend: b.fe.noBackend.Load(), BadGateway: b.fe.badGateway.Load(),
		Timeouts: b.fe.timeouts.Load(), Retries: b.fe.retries.Load(),
	}
	for _, be := range b.pool.Load().backends {
		s.Backends = append(s.Backends, be.snapshot(cfg.Check.Fall, cfg.Check.Rise))
	}
	return s
}

// statsHandler serves the stats page at the configured path, Prometheus
// text at /metrics and the same as JSON at /stats.json (for the admin
// API and the dashboard), all behind basic auth.
func (b *Balancer) statsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		a := b.auth.Load()
		user, pass, ok := r.BasicAuth()
		if a == nil || !ok || !a.check(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="stats", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			writeMetrics(w, b.Stats())
		case "/stats.json":
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(b.Stats())
		case b.cfg.Load().Stats.Path:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := statsPage.Execute(w, b.Stats()); err != nil {
				b.log.Debug("writing stats page", "err", err)
			}
		default:
			http.NotFound(w, r)
		}
	})
}

func (b *Balancer) listenStats(cfg *Config) (frontend, error) {
	ln, err := net.Listen("tcp", cfg.Stats.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening for stats on %s: %w", cfg.Stats.Addr, err)
	}
	b.addrs.Lock()
	b.addrs.stats = ln.Addr()
	b.addrs.Unlock()
	srv := &http.Server{
		Handler:           b.statsHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	return &statsFrontend{srv: srv, ln: ln}, nil
}

type statsFrontend struct {
	srv *http.Server
	ln  net.Listener
}

func (f *statsFrontend) serve() error {
	if err := f.srv.Serve(f.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (f *statsFrontend) shutdown(ctx context.Context) {
	if f.srv.Shutdown(ctx) != nil {
		f.srv.Close()
	}
}

func (f *statsFrontend) close() { f.ln.Close() }

// writeMetrics writes s in the Prometheus text exposition format.
func writeMetrics(w io.Writer, s Stats) {
	var sb strings.Builder
	gauge := func(name, help string) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	counter := func(name, help string) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	}
	gauge("balancer_connections", "Client connections open now.")
	fmt.Fprintf(&sb, "balancer_connections %d\n", s.ConnsNow)
	counter("balancer_connections_total", "Client connections accepted.")
	fmt.Fprintf(&sb, "balancer_connections_total %d\n", s.ConnsTotal)
	counter("balancer_requests_total", "Requests (http) or connections (tcp) received.")
	fmt.Fprintf(&sb, "balancer_requests_total %d\n", s.Requests)
	counter("balancer_refused_total", "Requests answered by the balancer itself, by reason.")
	for _, r := range []struct {
		why string
		n   uint64
	}{{"bad_request", s.BadRequests}, {"no_backend", s.NoBackend}, {"bad_gateway", s.BadGateway}, {"timeout", s.Timeouts}} {
		fmt.Fprintf(&sb, "balancer_refused_total{reason=%q} %d\n", r.why, r.n)
	}
	counter("balancer_retries_total", "Requests moved to another backend after a connect failure.")
	fmt.Fprintf(&sb, "balancer_retries_total %d\n", s.Retries)

	per := func(name, kind, help string, v func(BackendStats) string) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
		for _, be := range s.Backends {
			fmt.Fprintf(&sb, "%s{backend=%q} %s\n", name, be.Name, v(be))
		}
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	b01 := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	per("balancer_backend_up", "gauge", "1 if the backend's checks pass.", func(b BackendStats) string { return b01(b.Up) })
	per("balancer_backend_usable", "gauge", "1 if the backend takes new requests (up, not draining).", func(b BackendStats) string { return b01(b.Usable) })
	per("balancer_backend_weight", "gauge", "The backend's weight.", func(b BackendStats) string { return strconv.Itoa(b.Weight) })
	per("balancer_backend_current_requests", "gauge", "Requests (or connections) in flight.", func(b BackendStats) string { return strconv.FormatInt(b.Inflight, 10) })
	per("balancer_backend_queue", "gauge", "Requests waiting for a slot below max_conn.", func(b BackendStats) string { return strconv.Itoa(b.Queue) })
	per("balancer_backend_requests_total", "counter", "Requests (or connections) sent.", func(b BackendStats) string { return u(b.Requests) })
	per("balancer_backend_connect_errors_total", "counter", "Failed connection attempts.", func(b BackendStats) string { return u(b.ConnErrors) })
	per("balancer_backend_response_errors_total", "counter", "Failures after connecting: resets, timeouts, bad answers.", func(b BackendStats) string { return u(b.RespErrors) })
	per("balancer_backend_http_5xx_total", "counter", "Responses with status 5xx.", func(b BackendStats) string { return u(b.HTTP5xx) })
	per("balancer_backend_retries_total", "counter", "Requests moved away after a connect failure.", func(b BackendStats) string { return u(b.Retries) })
	per("balancer_backend_redispatches_total", "counter", "Requests without an answer yet moved to another backend when this one was marked down.", func(b BackendStats) string { return u(b.Redispatches) })
	per("balancer_backend_checks_total", "counter", "Health checks run.", func(b BackendStats) string { return u(b.Health.Checks) })
	per("balancer_backend_check_failures_total", "counter", "Health checks failed.", func(b BackendStats) string { return u(b.Health.Failed) })
	per("balancer_backend_downs_total", "counter", "Transitions to down.", func(b BackendStats) string { return u(b.Health.Downs) })
	per("balancer_backend_check_duration_seconds", "gauge", "Duration of the last check.", func(b BackendStats) string {
		return strconv.FormatFloat(b.Health.LastDur.Seconds(), 'g', -1, 64)
	})
	name := "balancer_backend_response_seconds"
	fmt.Fprintf(&sb, "# HELP %s Time to response headers (http) or to connect (tcp).\n# TYPE %s histogram\n", name, name)
	for _, be := range s.Backends {
		var cum uint64
		for i, ub := range latencyBuckets {
			cum += be.Latency.Counts[i]
			fmt.Fprintf(&sb, "%s_bucket{backend=%q,le=\"%g\"} %d\n", name, be.Name, ub.Seconds(), cum)
		}
		cum += be.Latency.Counts[len(latencyBuckets)]
		fmt.Fprintf(&sb, "%s_bucket{backend=%q,le=\"+Inf\"} %d\n", name, be.Name, cum)
		fmt.Fprintf(&sb, "%s_sum{backend=%q} %g\n%s_count{backend=%q} %d\n", name, be.Name, be.Latency.Sum.Seconds(), name, be.Name, cum)
	}
	io.WriteString(w, sb.String())
}

var statsPage = template.Must(template.New("stats").Funcs(template.FuncMap{
	"ms": func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms" },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"p": func(h LatencySnapshot, q float64) string {
		if h.count() == 0 {
			return "-"
		}
		return "≤" + strconv.FormatFloat(float64(h.quantile(q))/1e6, 'f', 1, 64) + " ms"
	},
	"avg": func(h LatencySnapshot) string {
		n := h.count()
		if n == 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(h.Sum)/float64(n)/1e6, 'f', 2, 64) + " ms"
	},
	"state": func(s string) string {
		switch {
		case strings.HasPrefix(s, "UP"):
			return "up"
		case s == "DRAIN":
			return "drain"
		default:
			return "down"
		}
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>Balancer statistics</title>
<style>
body{font-family:sans-serif;font-size:14px;margin:1em}
table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:right}
th{background:#ddd}td.l{text-align:left}tr.Up{background:#cfc}tr.down{background:#fbb}tr.drain{background:#adf}
</style></head><body>
<h1>Balancer statistics</h1>
<p>Mode {{.Mode}}, algorithm {{.Algorithm}}, checks fall {{.Fall}} rise {{.Rise}}.
Connections now {{.ConnsNow}}, total {{.ConnsTotal}}; requests {{.Requests}};
refused: bad request {{.BadRequests}}, no backend {{.NoBackend}}, bad gateway {{.BadGateway}}, timeout {{.Timeouts}}; retries {{.Retries}}.</p>
<table>
<tr><th>Backend</th><th>Address</th><th>State</th><th>Since</th><th>Reason</th><th>Last check</th><th>Check time</th><th>Weight</th><th>Backup</th>
<th>Current</th><th>Max</th><th>Queue</th><th>Total</th><th>Conn. errors</th><th>Resp. errors</th><th>5xx</th><th>Retries</th><th>Redisp.</th>
<th>Avg</th><th>p50</th><th>p99</th><th>Max</th></tr>
{{range .Backends}}<tr class="{{state .State}}">
<td class="l">{{.Name}}</td><td class="l">{{.Addr}}</td><td class="l">{{.State}}</td><td>{{ago .Health.Since}}</td>
<td class="l">{{.Health.Reason}}</td><td class="l">{{if .Checked}}{{.Health.LastMsg}}{{else}}no check{{end}}</td><td>{{ms .Health.LastDur}}</td>
<td>{{.Weight}}</td><td>{{if .Backup}}Y{{end}}</td><td>{{.Inflight}}</td><td>{{if .MaxConn}}{{.MaxConn}}{{end}}</td><td>{{.Queue}}</td>
<td>{{.Requests}}</td><td>{{.ConnErrors}}</td><td>{{.RespErrors}}</td><td>{{.HTTP5xx}}</td><td>{{.Retries}}</td><td>{{.Redispatches}}</td>
<td>{{avg .Latency}}</td><td>{{p .Latency 0.5}}</td><td>{{p .Latency 0.99}}</td><td>{{ms .Latency.Max}}</td></tr>
{{end}}</table>
</body></html>
`))
