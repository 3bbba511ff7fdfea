package balancer

import (
	"net/http"
	"strings"
)

// prefixSep separates the backend from the application's value in prefix
// mode, as in HAProxy: "JSESSIONID=web1~abc".
const prefixSep = "~"

// findCookie returns the value of the first cookie name in the Cookie
// header lines of a request.
func findCookie(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return strings.Trim(v, `"`), true
			}
		}
	}
	return "", false
}

// pinnedBackend returns the backend name a request's persistence cookie
// names, or "".
func pinnedBackend(h http.Header, c *CookieConfig) string {
	v, ok := findCookie(h["Cookie"], c.Name)
	if !ok {
		return ""
	}
	if c.Prefix {
		be, _, ok := strings.Cut(v, prefixSep)
		if !ok {
			return ""
		}
		return be
	}
	return v
}

// stripPersistence removes what the balancer added to a request's cookies
// before it goes to the backend: the whole cookie in insert mode, the
// "backend~" prefix in prefix mode. Other cookies pass unchanged.
func stripPersistence(h http.Header, c *CookieConfig) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	changed := false
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		l, ch := stripPersistenceLine(line, c)
		changed = changed || ch
		if l != "" {
			out = append(out, l)
		}
	}
	if !changed {
		return
	}
	if len(out) == 0 {
		h.Del("Cookie")
		return
	}
	h["Cookie"] = out
}

// stripPersistenceLine is stripPersistence for one Cookie header line; it
// returns "" when nothing is left of it.
func stripPersistenceLine(line string, c *CookieConfig) (string, bool) {
	if !strings.Contains(line, c.Name) {
		return line, false
	}
	changed := false
	var parts []string
	for _, part := range strings.Split(line, ";") {
		p := strings.TrimSpace(part)
		k, v, _ := strings.Cut(p, "=")
		if k != c.Name {
			if p != "" {
				parts = append(parts, p)
			}
			continue
		}
		changed = true
		if c.Prefix {
			if _, rest, ok := strings.Cut(v, prefixSep); ok {
				v = rest
			}
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, "; "), changed
}

// prefixSetCookie returns a Set-Cookie value with backend prefixed to the
// value of cookie c.Name, and whether it was that cookie.
func prefixSetCookie(line string, c *CookieConfig, backend string) (string, bool) {
	k, rest, ok := strings.Cut(line, "=")
	if !ok || strings.TrimSpace(k) != c.Name {
		return line, false
	}
	return k + "=" + backend + prefixSep + rest, true
}

// setPersistence marks a response so that the client's next requests go to
// backend: a Set-Cookie of its own in insert mode, or the backend prefixed
// to the application's Set-Cookie in prefix mode.
func setPersistence(h http.Header, c *CookieConfig, backend string, alreadyPinned bool) {
	if !c.Prefix {
		if alreadyPinned {
			return
		}
		h.Add("Set-Cookie", c.Name+"="+backend+"; Path=/; HttpOnly")
		// A shared cache must not hand one client's pin to another.
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", `private, no-cache="set-cookie"`)
		}
		return
	}
	lines := h["Set-Cookie"]
	for i, line := range lines {
		lines[i], _ = prefixSetCookie(line, c, backend)
	}
}
