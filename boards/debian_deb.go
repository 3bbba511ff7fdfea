package boards

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// A .deb is an ar archive ("!<arch>\n", then members with 60-byte
// headers, each member's data padded to an even length) holding
// debian-binary, control.tar.* and data.tar.*, in that order (deb(5)).

const arMagic = "!<arch>\n"

// arMember is one member of an ar archive.
type arMember struct {
	Name string
	Size int64
}

// arReader reads the members of an ar archive in order.
type arReader struct {
	r       *bufio.Reader
	remain  int64 // unread bytes of the current member
	pad     bool  // the current member is followed by a padding byte
	started bool
}

func newArReader(r io.Reader) *arReader { return &arReader{r: bufio.NewReaderSize(r, 1<<16)} }

// Next skips to the next member and returns its header; io.EOF at the end.
func (a *arReader) Next() (*arMember, error) {
	if !a.started {
		magic := make([]byte, len(arMagic))
		if _, err := io.ReadFull(a.r, magic); err != nil || string(magic) != arMagic {
			return nil, errors.New("not an ar archive (a .deb starts with !<arch>)")
		}
		a.started = true
	}
	skip := a.remain
	if a.pad {
		skip++
	}
	if _, err := io.CopyN(io.Discard, a.r, skip); err != nil {
		return nil, fmt.Errorf("ar archive truncated: %w", err)
	}
	a.remain, a.pad = 0, false
	var h [60]byte
	n, err := io.ReadFull(a.r, h[:])
	if err == io.EOF && n == 0 {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("ar archive truncated in a header: %w", err)
	}
	if h[58] != '`' || h[59] != '\n' {
		return nil, errors.New("ar member header has a bad end marker")
	}
	name := strings.TrimRight(string(h[0:16]), " ")
	name = strings.TrimSuffix(name, "/") // GNU ar ends names with "/"
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("ar member %q has a bad size %q", name, strings.TrimSpace(string(h[48:58])))
	}
	a.remain, a.pad = size, size%2 == 1
	return &arMember{Name: name, Size: size}, nil
}

// Read reads the current member's data.
func (a *arReader) Read(p []byte) (int, error) {
	if a.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.remain {
		p = p[:a.remain]
	}
	n, err := a.r.Read(p)
	a.remain -= int64(n)
	if err == io.EOF && a.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// debData returns a reader of the uncompressed data.tar of the .deb read
// by r. It understands data.tar.xz (what Debian's kernel packages use),
// data.tar.gz and an uncompressed data.tar.
func debData(r io.Reader) (io.Reader, error) {
	ar := newArReader(r)
	for {
		m, err := ar.Next()
		if err == io.EOF {
			return nil, errors.New("the .deb has no data.tar member")
		}
		if err != nil {
			return nil, err
		}
		switch m.Name {
		case "data.tar.xz":
			// ulikunitz/xz is a pure-Go xz reader: the builder needs no
			// xz program, and the whole module graph already had it.
			zr, err := xz.NewReader(bufio.NewReaderSize(ar, 1<<20))
			if err != nil {
				return nil, fmt.Errorf("reading data.tar.xz: %w", err)
			}
			return zr, nil
		case "data.tar.gz":
			zr, err := gzip.NewReader(ar)
			if err != nil {
				return nil, fmt.Errorf("reading data.tar.gz: %w", err)
			}
			return zr, nil
		case "data.tar":
			return ar, nil
		}
		if strings.HasPrefix(m.Name, "data.tar") {
			return nil, fmt.Errorf("the .deb's %s uses a compression the builder does not read (xz, gzip or none)", m.Name)
		}
	}
}

// extractDeb unpacks the regular files and folders of the .deb at debPath
// whose paths keep(path) accepts into dir, the way `dpkg-deb -x` would;
// visit, when set, sees each kept file's path and contents after it is
// written. Symlinks and other entries are skipped; paths that would leave
// dir are refused.
func extractDeb(debPath, dir string, keep func(string) bool, visit func(name string, data []byte) error) error {
	f, err := os.Open(debPath)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := debData(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", debPath, err)
	}
	tr := tar.NewReader(data)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: data.tar: %w", debPath, err)
		}
		name := path.Clean(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"))
		if name == "." {
			continue
		}
		if !isLocalPath(name) {
			return fmt.Errorf("reading %s: entry %q leaves the package root", debPath, h.Name)
		}
		if !keep(name) {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if h.Size > 256<<20 {
				return fmt.Errorf("reading %s: %s is %d bytes, more than any kernel file should be", debPath, name, h.Size)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("reading %s: %s: %w", debPath, name, err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return err
			}
			if visit != nil {
				if err := visit(name, b); err != nil {
					return err
				}
			}
		}
	}
}

// isLocalPath reports whether the slash-separated, cleaned path stays
// inside its root.
func isLocalPath(p string) bool {
	return p != ".." && !strings.HasPrefix(p, "../") && !path.IsAbs(p)
}
