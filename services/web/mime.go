package web

import (
	"path"
	"strings"
)

// mimeTypes maps extensions to Content-Types. The table is built in rather
// than read from /etc/mime.types so a node answers the same as the test
// machine: the image has no such file.
var mimeTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".xml":         "application/xml",
	".rss":         "application/rss+xml",
	".atom":        "application/atom+xml",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/vnd.microsoft.icon",
	".bmp":         "image/bmp",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".zip":         "application/zip",
	".gz":          "application/gzip",
	".tar":         "application/x-tar",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".wav":         "audio/wav",
	".m3u8":        "application/vnd.apple.mpegurl",
}

// defaultMimeType is sent for unknown extensions, like nginx's
// default_type.
const defaultMimeType = "application/octet-stream"

// contentType returns the Content-Type for a file name; extra overrides the
// built-in table. Extensions match without regard to case.
func contentType(name string, extra map[string]string) string {
	ext := path.Ext(name)
	if ext == "" {
		return defaultMimeType
	}
	if t, ok := extra[ext]; ok {
		return t
	}
	if t, ok := mimeTypes[ext]; ok {
		return t
	}
	lower := strings.ToLower(ext)
	if t, ok := extra[lower]; ok {
		return t
	}
	if t, ok := mimeTypes[lower]; ok {
		return t
	}
	return defaultMimeType
}
