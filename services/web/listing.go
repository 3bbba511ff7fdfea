package web

import (
	"html"
	"net/http"
	"slices"
	"strings"
)

// listing answers with an HTML list of the directory e (Config.Listing).
// Hidden dotfiles stay hidden; entries are sorted by name, folders first.
func (s *site) listing(w *response, e *entry, now int64) {
	h, id, err := s.tree.open(e.dirRel)
	if err != nil {
		s.fail(w, statusOf(err), now)
		return
	}
	if !id.isDir() {
		h.Close()
		s.fail(w, http.StatusNotFound, now)
		return
	}
	ents, err := readDir(h, e.dirRel)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, now)
		return
	}
	type item struct {
		name string
		dir  bool
	}
	items := make([]item, 0, len(ents))
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".") && !s.cfg.ShowDotfiles {
			continue
		}
		items = append(items, item{name, de.IsDir()})
	}
	slices.SortFunc(items, func(a, b item) int {
		if a.dir != b.dir {
			if a.dir {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var b strings.Builder
	title := html.EscapeString(e.urlPath)
	b.WriteString("<!doctype html>\n<meta charset=\"utf-8\">\n<title>Index of " + title + "</title>\n<h1>Index of " + title + "</h1>\n<ul>\n")
	if e.urlPath != "/" {
		b.WriteString("<li><a href=\"../\">../</a></li>\n")
	}
	for _, it := range items {
		name := it.name
		if it.dir {
			name += "/"
		}
		href := escapePath(name)
		if strings.HasPrefix(href, "/") || strings.Contains(name, ":") {
			href = "./" + href
		}
		b.WriteString("<li><a href=\"" + html.EscapeString(href) + "\">" + html.EscapeString(name) + "</a></li>\n")
	}
	b.WriteString("</ul>\n")
	w.text(http.StatusOK, b.String())
	w.contentType = "text/html; charset=utf-8"
	w.cacheControl = "no-cache"
}
