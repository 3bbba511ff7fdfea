package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/piimage/piimage/services/supervise"
)

// ControlFunc sends command (with arg, "" when none) to the named
// supervised service and returns its answer; the node implements it over
// the service's socket (supervise.ControlSocket).
type ControlFunc func(ctx context.Context, service, command, arg string) (string, error)

// controlTimeout bounds one command: a drain waits for requests in flight.
const controlTimeout = time.Minute

// mountControl adds POST /services/{name}/{command}?arg=ARG: a runtime
// command to one service, for planned operations (piimage rollout hands
// the VIP over and drains web nodes with it). It is mounted only behind
// the cluster token, or for requests from the node itself.
func (s *Server) mountControl(mux *http.ServeMux) {
	mux.HandleFunc("POST /services/{name}/{command}", s.serveControl)
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	if s.Control == nil {
		http.Error(w, "this node takes no service commands", http.StatusNotFound)
		return
	}
	name, command, arg := r.PathValue("name"), r.PathValue("command"), r.URL.Query().Get("arg")
	ctx, cancel := context.WithTimeout(r.Context(), controlTimeout)
	defer cancel()
	msg, err := s.Control(ctx, name, command, arg)
	var ce *supervise.ControlError
	switch {
	case errors.As(err, &ce):
		http.Error(w, fmt.Sprintf("%s %s: %s", name, command, ce.Msg), ce.Status)
	case err != nil:
		http.Error(w, fmt.Sprintf("%s %s: %v", name, command, err), http.StatusBadGateway)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, msg)
		s.log().Info("service command", "service", name, "command", command, "arg", arg, "result", msg)
	}
}
