package balancer

import (
	"net/http"
	"net/netip"
)

// requestKey returns the hash key of r for the configured algorithm, and
// false when there is nothing to hash (roundrobin and leastconn, or a
// request without the hashed header or parameter), in which case the
// request goes round-robin as HAProxy's do.
func requestKey(cfg *Config, r *http.Request) (uint64, bool) {
	switch cfg.Algorithm {
	case "source":
		return sourceKey(r.RemoteAddr)
	case "uri":
		return hashString(uriKey(r.RequestURI, cfg.URILen, cfg.URIDepth)), true
	case "url_param":
		v, ok := queryParam(r.URL.RawQuery, cfg.HashParam)
		if !ok || v == "" {
			return 0, false
		}
		return hashString(v), true
	case "hdr":
		v := r.Header.Get(cfg.HashHeader)
		if cfg.HashDomainOnly {
			v = mainDomain(v)
		}
		if v == "" {
			return 0, false
		}
		return hashString(v), true
	}
	return 0, false
}

// mainDomain returns the most significant label of a host name, as
// HAProxy's use_domain_only hashes it: "example" for www.example.org:8080.
// A name of one label, or an IP address, is returned whole (without port).
func mainDomain[S ~string | ~[]byte](v S) S {
	if i := indexByte(v, ':'); i >= 0 && indexByte(v[i+1:], ':') < 0 {
		v = v[:i] // a port; an IPv6 address has more colons
	}
	for len(v) > 0 && v[len(v)-1] == '.' {
		v = v[:len(v)-1] // a fully qualified name's final dot
	}
	if _, err := netip.ParseAddr(string(v)); err == nil {
		return v
	}
	last := -1
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == '.' {
			if last >= 0 {
				return v[i+1 : last]
			}
			last = i
		}
	}
	if last >= 0 {
		return v[:last]
	}
	return v
}

// sourceKey hashes the IP address of a "host:port" remote address; an
// IPv4-mapped IPv6 address hashes like its IPv4 form.
func sourceKey(remote string) (uint64, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return 0, false
	}
	a := ap.Addr().Unmap().As16()
	return hashBytes(a[:]), true
}

// uriKey returns the part of a request URI that algorithm uri hashes: the
// path without the query, cut after depth directories (0: all) and then to
// length characters (0: all), like HAProxy's "balance uri len N depth N".
func uriKey[S ~string | ~[]byte](uri S, length, depth int) S {
	for i := 0; i < len(uri); i++ {
		if uri[i] == '?' {
			uri = uri[:i]
			break
		}
	}
	if depth > 0 {
		slashes := 0
		for i := 0; i < len(uri); i++ {
			if uri[i] == '/' {
				slashes++
				if slashes > depth {
					uri = uri[:i]
					break
				}
			}
		}
	}
	if length > 0 && len(uri) > length {
		uri = uri[:length]
	}
	return uri
}

// queryParam returns the raw value of the first parameter name in a raw
// query string, without allocating.
func queryParam[S ~string | ~[]byte](raw S, name string) (S, bool) {
	for len(raw) > 0 {
		kv := raw
		if i := indexByte(raw, '&'); i >= 0 {
			kv, raw = raw[:i], raw[i+1:]
		} else {
			raw = raw[len(raw):]
		}
		k, v := kv, kv[len(kv):]
		if i := indexByte(kv, '='); i >= 0 {
			k, v = kv[:i], kv[i+1:]
		}
		if string(k) == name {
			return v, true
		}
	}
	return raw[:0], false
}

func indexByte[S ~string | ~[]byte](s S, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// headKey is requestKey for a request parsed by the HTTP/1 engine.
func headKey(cfg *Config, h *head, remote string) (uint64, bool) {
	switch cfg.Algorithm {
	case "source":
		return sourceKey(remote)
	case "uri":
		return hashBytes(uriKey(h.target, cfg.URILen, cfg.URIDepth)), true
	case "url_param":
		t := h.target
		i := indexByte(t, '?')
		if i < 0 {
			return 0, false
		}
		v, ok := queryParam(t[i+1:], cfg.HashParam)
		if !ok || len(v) == 0 {
			return 0, false
		}
		return hashBytes(v), true
	case "hdr":
		v := h.get(cfg.HashHeader)
		if cfg.HashDomainOnly {
			v = mainDomain(v)
		}
		if len(v) == 0 {
			return 0, false
		}
		return hashBytes(v), true
	}
	return 0, false
}
