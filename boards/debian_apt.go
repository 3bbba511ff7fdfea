package boards

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// AptMirrors returns the archive URIs of the enabled binary ("deb")
// entries in apt's sources under aptDir: sources.list and
// sources.list.d/*.list (one-line format) and sources.list.d/*.sources
// (deb822). Only http and https URIs count. Archives whose suites are all
// security suites come last: their pool has a different layout. The
// builder fetches Debian packages from the same mirrors apt uses, and names
// no host of its own.
func AptMirrors(aptDir string) ([]string, error) {
	var files []string
	if _, err := os.Stat(filepath.Join(aptDir, "sources.list")); err == nil {
		files = append(files, filepath.Join(aptDir, "sources.list"))
	}
	ents, _ := os.ReadDir(filepath.Join(aptDir, "sources.list.d"))
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, filepath.Join(aptDir, "sources.list.d", n))
	}
	var all []aptEntry
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading apt sources: %w", err)
		}
		if strings.HasSuffix(f, ".sources") {
			all = append(all, parseDeb822Sources(string(data))...)
		} else {
			all = append(all, parseOneLineSources(string(data))...)
		}
	}
	var first, last []string
	seen := map[string]bool{}
	for _, e := range all {
		if !e.deb || !e.enabled {
			continue
		}
		for _, u := range e.uris {
			u = strings.TrimSuffix(u, "/")
			if seen[u] || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
				continue
			}
			seen[u] = true
			if e.securityOnly() {
				last = append(last, u)
			} else {
				first = append(first, u)
			}
		}
	}
	out := append(first, last...)
	if len(out) == 0 {
		return nil, fmt.Errorf("no Debian mirror: apt's sources in %s list no http(s) archive; set PIIMAGE_DEBIAN_MIRROR to a Debian mirror's URL", aptDir)
	}
	return out, nil
}

// aptEntry is one source entry: its types, URIs and suites.
type aptEntry struct {
	deb     bool
	enabled bool
	uris    []string
	suites  []string
}

func (e aptEntry) securityOnly() bool {
	if len(e.suites) == 0 {
		return false
	}
	for _, s := range e.suites {
		if !strings.HasSuffix(s, "-security") && !strings.HasSuffix(s, "/updates") {
			return false
		}
	}
	return true
}

// parseOneLineSources reads the one-line format:
// "deb [option=value ...] URI SUITE [COMPONENT...]".
func parseOneLineSources(text string) []aptEntry {
	var out []aptEntry
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		e := aptEntry{deb: f[0] == "deb", enabled: true}
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") {
			// Options run to the first field that ends with "]".
			for len(rest) > 0 {
				done := strings.HasSuffix(rest[0], "]")
				rest = rest[1:]
				if done {
					break
				}
			}
		}
		if len(rest) < 2 {
			continue
		}
		e.uris = []string{rest[0]}
		e.suites = []string{rest[1]}
		out = append(out, e)
	}
	return out
}

// parseDeb822Sources reads the deb822 format: paragraphs of "Field: value"
// lines separated by blank lines; continuation lines start with a space.
func parseDeb822Sources(text string) []aptEntry {
	var out []aptEntry
	fields := map[string]string{}
	var key string
	flush := func() {
		if len(fields) == 0 {
			return
		}
		e := aptEntry{enabled: true}
		for _, t := range strings.Fields(fields["types"]) {
			if t == "deb" {
				e.deb = true
			}
		}
		if v := strings.ToLower(strings.TrimSpace(fields["enabled"])); v == "no" || v == "false" {
			e.enabled = false
		}
		e.uris = strings.Fields(fields["uris"])
		e.suites = strings.Fields(fields["suites"])
		out = append(out, e)
		fields = map[string]string{}
		key = ""
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if key != "" {
				fields[key] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			fields[key] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}
