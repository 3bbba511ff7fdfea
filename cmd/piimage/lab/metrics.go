package lab

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"

	"github.com/piimage/piimage/services/admin"
)

// balancerMetrics is what the lab reads from a balancer's /metrics.
type balancerMetrics struct {
	Requests uint64
	Backends []admin.BackendView
}

// backend returns the named backend, or nil.
func (m *balancerMetrics) backend(name string) *admin.BackendView {
	for i := range m.Backends {
		if m.Backends[i].Name == name {
			return &m.Backends[i]
		}
	}
	return nil
}

// parseMetrics reads the balancer's Prometheus text: the request counter
// and, per backend, up, usable and requests. Other metrics are skipped.
func parseMetrics(text string) (balancerMetrics, error) {
	var m balancerMetrics
	index := map[string]int{}
	be := func(name string) *admin.BackendView {
		i, ok := index[name]
		if !ok {
			i = len(m.Backends)
			index[name] = i
			m.Backends = append(m.Backends, admin.BackendView{Name: name})
		}
		return &m.Backends[i]
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(s, ' ')
		if sp < 0 {
			return m, fmt.Errorf("metrics line %d: no value", line)
		}
		name, value := s[:sp], s[sp+1:]
		labels := ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			if !strings.HasSuffix(name, "}") {
				return m, fmt.Errorf("metrics line %d: unclosed labels", line)
			}
			name, labels = name[:i], name[i+1:len(name)-1]
		}
		switch name {
		case "balancer_requests_total":
			v, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return m, fmt.Errorf("metrics line %d: %w", line, err)
			}
			m.Requests = v
		case "balancer_backend_up", "balancer_backend_usable", "balancer_backend_requests_total":
			b, ok := label(labels, "backend")
			if !ok {
				return m, fmt.Errorf("metrics line %d: %s without a backend label", line, name)
			}
			v, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return m, fmt.Errorf("metrics line %d: %w", line, err)
			}
			switch name {
			case "balancer_backend_up":
				be(b).Up = v == 1
			case "balancer_backend_usable":
				be(b).Usable = v == 1
			default:
				be(b).Requests = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading metrics: %w", err)
	}
	return m, nil
}

// label returns the value of key in a Prometheus label list such as
// `backend="web01",le="0.1"`.
func label(labels, key string) (string, bool) {
	for labels != "" {
		eq := strings.IndexByte(labels, '=')
		if eq < 0 || eq+1 >= len(labels) || labels[eq+1] != '"' {
			return "", false
		}
		k := strings.TrimSpace(labels[:eq])
		rest := labels[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			val.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return "", false
		}
		if k == key {
			return val.String(), true
		}
		labels = strings.TrimPrefix(rest[i+1:], ",")
	}
	return "", false
}
