package cli

import (
	"context"
	"io"
	"time"

	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/overlays"
)

func rolloutCommand() command {
	return command{
		name:  "rollout",
		short: "update a cluster one node at a time, stopping at the first failure (CLUSTER IMAGE...)",
		run:   runRollout,
	}
}

type rolloutFlags struct {
	keys    string
	src     string
	full    bool
	timeout time.Duration
}

func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f rolloutFlags
	fset := newFlagSet("rollout", "rollout [flags] CLUSTER IMAGE...", stderr)
	fset.StringVar(&f.keys, "keys", "", "the cluster's keys folder (default: .keys in the source tree)")
	fset.StringVar(&f.src, "src", "", "piimage source tree (default: found from the current folder)")
	fset.BoolVar(&f.full, "full", false, "send every byte, even those a node already has")
	fset.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up on a node after this long")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return &usageError{"rollout: give the cluster folder and at least one image (one per role)"}
	}
	nodes, err := overlays.LoadDir(pos[0])
	if err != nil {
		return err
	}
	dir, err := keysDir(f.keys, f.src)
	if err != nil {
		return err
	}
	cred, err := loadCredential(dir)
	if err != nil {
		return err
	}
	var imgs []*rollout.Image
	for _, p := range pos[1:] {
		ri, err := rollout.OpenImage(p)
		if err != nil {
			return err
		}
		defer ri.File.Close()
		imgs = append(imgs, ri)
	}
	plan, err := rollout.Plan(nodes, imgs)
	if err != nil {
		return err
	}
	_, err = rollout.Run(ctx, plan, rollout.Options{
		Cluster: nodes,
		Client: func(n *overlays.Node) (*rollout.Client, error) {
			return rollout.NewClient(rollout.AdminAddr(n), cred, nil)
		},
		Push:    rollout.PushOptions{Full: f.full, Out: stdout, Progress: progressWriter(stderr)},
		Timeout: f.timeout,
		Out:     stdout,
	})
	return err
}
