package node

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// control sends a command to one of this node's services over its socket
// (the admin API's POST /services/{name}/{command}).
func (r *instance) control(ctx context.Context, name, command, arg string) (string, error) {
	if _, ok := r.registry[name]; !ok || strings.ContainsAny(name, "/.") {
		return "", &supervise.ControlError{Status: http.StatusNotFound, Msg: "no service " + name + " on this node"}
	}
	return supervise.ControlSocket(ctx, filepath.Join(r.runDir, name+".sock"), command, arg)
}
