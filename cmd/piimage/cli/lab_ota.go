package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/piimage/piimage/cmd/piimage/lab"
	"github.com/piimage/piimage/overlays"
)

func runLabRollout(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var keys, src string
	fs := labFlags(&g, "lab rollout", "lab rollout IMAGE... [--keys DIR]", stderr)
	fs.StringVar(&keys, "keys", "", "the keys folder the images were built with (default: .keys in the source tree)")
	fs.StringVar(&src, "src", "", "piimage source tree (default: found from the current folder)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return &usageError{"lab rollout: give the signed images, one per role"}
	}
	cards, err := labCards(pos, keys, src)
	if err != nil {
		return err
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = l.Rollout(ctx, cards, stdout)
	return err
}

// labCards returns images with the cluster keys of the keys folder (the
// source tree's .keys by default).
func labCards(images []string, keys, src string) (*lab.Cards, error) {
	dir, err := keysDir(keys, src)
	if err != nil {
		return nil, err
	}
	k, err := loadKeys(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster keys in %s: %w (--keys: the folder the images were built with)", dir, err)
	}
	for i, p := range images {
		if images[i], err = filepath.Abs(p); err != nil {
			return nil, err
		}
	}
	return &lab.Cards{Images: images, PubPEM: k.pubPEM, Admin: k.cred}, nil
}

// labReportImages builds, for a lab the report brings up, a signed image
// of every role of the cluster at versions lab-v1 (booted) and lab-v2
// (rolled out), with the source tree's keys. When that cannot be done it
// returns why instead, and the report goes on without the rolling update.
// The caller removes dir when done.
func labReportImages(ctx context.Context, o LabReportOptions, log io.Writer) (boot, update *lab.Cards, dir, why string) {
	tree, err := findSource(o.Src)
	if err != nil {
		return nil, nil, dir, fmt.Sprintf("not measured: no source tree to build images from (%v)", err)
	}
	cluster := o.Cluster
	if cluster == "" {
		cluster = filepath.Join(tree, "overlays")
	}
	nodes, err := overlays.LoadDir(cluster)
	if err != nil {
		return nil, nil, dir, fmt.Sprintf("not measured: %v", err)
	}
	roles := map[string]string{} // role -> the first node's overlay
	var order []string
	for _, n := range nodes {
		if _, ok := roles[n.Role]; !ok {
			roles[n.Role] = n.File
			order = append(order, n.Role)
		}
	}
	dir, err = os.MkdirTemp("", "piimage-lab-images-")
	if err != nil {
		return nil, nil, dir, fmt.Sprintf("not measured: %v", err)
	}
	var sets [2][]string
	for i, version := range []string{"lab-v1", "lab-v2"} {
		for _, role := range order {
			out := filepath.Join(dir, role+"-"+version+".img")
			fmt.Fprintf(log, "lab report: building the %s image %s for the rolling update\n", role, version)
			args := []string{"build", "--overlay", roles[role], "--version", version, "--out", out, "--src", tree}
			if err := Run(ctx, args, io.Discard, log); err != nil {
				return nil, nil, dir, fmt.Sprintf("not measured: building the %s image failed: %v", role, err)
			}
			sets[i] = append(sets[i], out)
		}
	}
	if boot, err = labCards(sets[0], "", tree); err != nil {
		return nil, nil, dir, fmt.Sprintf("not measured: %v", err)
	}
	if update, err = labCards(sets[1], "", tree); err != nil {
		return nil, nil, dir, fmt.Sprintf("not measured: %v", err)
	}
	return boot, update, dir, ""
}
