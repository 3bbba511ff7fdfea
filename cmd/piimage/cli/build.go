package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/piimage/piimage/boards"
	"github.com/piimage/piimage/image"
	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/rootfs"
)

func buildCommand() command {
	return command{
		name:  "build",
		short: "build SD-card images from overlays (--role lbmaster, --all, --overlay FILE)",
		run:   runBuild,
	}
}

type buildFlags struct {
	role    string
	overlay string
	cluster string
	all     bool
	board   string
	out     string
	outDir  string
	site    string
	version string
	src     string
	modTime string
	verbose bool
	key     string
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f buildFlags
	fs := newFlagSet("build", "build [--role ROLE | --overlay FILE | --all] [flags]", stderr)
	fs.StringVar(&f.role, "role", "", "build the first node of this role in the cluster folder: lbmaster, lbbackup or web")
	fs.StringVar(&f.overlay, "overlay", "", "build the node described by this overlay file")
	fs.StringVar(&f.cluster, "cluster", "overlays", "folder of node overlays (one *.yaml per node)")
	fs.BoolVar(&f.all, "all", false, "build one image for every node of the cluster folder")
	fs.StringVar(&f.board, "board", "", "board: pi2, pi3 or pi4 (default: the overlay's board, else pi3)")
	fs.StringVar(&f.out, "out", "", "output image path (one node only; default OUTDIR/HOSTNAME.img)")
	fs.StringVar(&f.outDir, "out-dir", "out", "output folder")
	fs.StringVar(&f.site, "site", "", "folder copied into the data partition's web root (web nodes)")
	fs.StringVar(&f.version, "version", "", "version recorded in the image (default: git describe of the source tree)")
	fs.StringVar(&f.src, "src", "", "piimage source tree (default: found from the current folder)")
	fs.StringVar(&f.modTime, "time", "", "timestamp for every file, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the source tree's last commit)")
	fs.BoolVar(&f.verbose, "v", false, "print how long each stage took")
	fs.StringVar(&f.key, "key", "", "update signing key (default: .keys/ota.key in the source tree, created on first build); its folder holds the cluster's admin credential")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{f.role != "", f.overlay != "", f.all} {
		if set {
			n++
		}
	}
	if n != 1 {
		return &usageError{"build: give exactly one of --role ROLE, --overlay FILE or --all"}
	}
	if f.all && f.out != "" {
		return &usageError{"build: --out names one image; with --all use --out-dir"}
	}
	src, err := findSource(f.src)
	if err != nil {
		return err
	}
	nodes, err := selectNodes(f)
	if err != nil {
		return err
	}
	version := f.version
	if version == "" {
		version = gitVersion(src)
	}
	modTime, err := buildTime(f.modTime, src)
	if err != nil {
		return err
	}
	keys, err := buildKeys(f.key, src, stdout)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "piimage-build-")
	if err != nil {
		return fmt.Errorf("creating work folder: %w", err)
	}
	defer os.RemoveAll(work)
	for _, sel := range nodes {
		out := f.out
		if out == "" {
			out = filepath.Join(f.outDir, sel.node.Hostname+".img")
		}
		if err := buildOne(ctx, stdout, src, work, sel, f, version, modTime, out, keys); err != nil {
			return err
		}
	}
	return nil
}

// selected is a node to build with its overlay's bytes.
type selected struct {
	node *overlays.Node
	data []byte
}

func selectNodes(f buildFlags) ([]selected, error) {
	var nodes []*overlays.Node
	if f.overlay != "" {
		n, err := overlays.Load(f.overlay)
		if err != nil {
			return nil, err
		}
		nodes = []*overlays.Node{n}
	} else {
		all, err := overlays.LoadDir(f.cluster)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("no overlays (*.yaml) in %s", f.cluster)
		}
		if f.all {
			nodes = all
		} else {
			for _, n := range all {
				if n.Role == f.role {
					nodes = []*overlays.Node{n}
					break
				}
			}
			if nodes == nil {
				return nil, fmt.Errorf("no node with role %q in %s (roles: lbmaster, lbbackup, web)", f.role, f.cluster)
			}
		}
	}
	var out []selected
	for _, n := range nodes {
		data, err := os.ReadFile(n.File)
		if err != nil {
			return nil, fmt.Errorf("reading overlay: %w", err)
		}
		out = append(out, selected{n, data})
	}
	return out, nil
}

func buildOne(ctx context.Context, stdout io.Writer, src, work string, sel selected, f buildFlags, version string, modTime time.Time, out string, keys *clusterKeys) error {
	start := time.Now()
	boardName := f.board
	if boardName == "" {
		boardName = sel.node.BoardOrDefault()
	}
	board, err := boards.Get(boardName)
	if err != nil {
		return err
	}
	if f.site != "" {
		if st, err := os.Stat(f.site); err != nil || !st.IsDir() {
			return fmt.Errorf("--site %s: not a folder", f.site)
		}
	}
	fmt.Fprintf(stdout, "building %s (role %s, board %s) from %s\n", sel.node.Hostname, sel.node.Role, board.Name, sel.node.File)
	var mirrorSecret []byte
	if sel.node.Role == overlays.RoleWeb {
		if mirrorSecret, err = ensureMirrorSecret(keys.dir, stdout); err != nil {
			return err
		}
	}
	plan, rel, err := rootfs.Plan(ctx, rootfs.Options{
		SrcDir:       src,
		Node:         sel.node,
		OverlayBytes: sel.data,
		Board:        board,
		Version:      version,
		ModTime:      modTime,
		SiteDir:      f.site,
		WorkDir:      work,
		OTAPublicKey: keys.pubPEM,
		AdminFiles:   keys.cred.NodeFiles(),
		MirrorSecret: mirrorSecret,
	})
	if err != nil {
		return fmt.Errorf("building %s: %w", sel.node.Hostname, err)
	}
	res, err := image.Write(ctx, out, plan)
	if err != nil {
		return fmt.Errorf("building %s: %w", sel.node.Hostname, err)
	}
	if _, err := otaimage.Sign(out, keys.priv, modTime); err != nil {
		return fmt.Errorf("building %s: %w", sel.node.Hostname, err)
	}
	if f.verbose {
		for _, st := range res.Stages {
			fmt.Fprintf(stdout, "  %-24s %6.2fs\n", st.Name, st.Took.Seconds())
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d MiB image, root %.1f MB (init %.1f MB), version %s, signed by key %s, in %.1fs\n",
		res.Path, res.Size>>20, float64(res.RootUsed)/1e6, float64(rel.InitSize)/1e6, rel.Version, imgota.KeyID(keys.pub()), time.Since(start).Seconds())
	return nil
}

// findSource returns the piimage source tree: dir if given, else the first
// folder from the current one upwards whose go.mod is piimage's.
func findSource(dir string) (string, error) {
	if dir != "" {
		if !isSourceTree(dir) {
			return "", fmt.Errorf("--src %s: not the piimage source tree (no go.mod for %s)", dir, modulePath)
		}
		return filepath.Abs(dir)
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isSourceTree(d) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("cannot find the piimage source tree from the current folder (the builder compiles the init from it): run inside the repository or pass --src")
		}
		d = parent
	}
}
