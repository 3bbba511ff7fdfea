package cli

import (
	"context"
	"io"

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

func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f pushFlags
	fset := newFlagSet("rollout", "rollout [flags] CLUSTER IMAGE...", stderr)
	f.register(fset, "give up on a node after this long")
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
