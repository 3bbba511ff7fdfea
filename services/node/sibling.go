package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/piimage/piimage/services/supervise"
)

// RunDirEnv names the environment variable through which the supervisor
// tells each service the folder of the services' health sockets.
const RunDirEnv = "PIIMAGE_RUN_DIR"

// SiblingHealth returns a check of another service's health over its socket,
// for a service that tracks a sibling: the VIP tracks the balancer. The
// check fails when the sibling is not running or says it is unhealthy.
func SiblingHealth(name string) func() error {
	return func() error {
		dir := os.Getenv(RunDirEnv)
		if dir == "" {
			return errors.New("no " + RunDirEnv + ": not started by the init's supervisor")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return supervise.CheckSocket(ctx, filepath.Join(dir, name+".sock"))
	}
}
