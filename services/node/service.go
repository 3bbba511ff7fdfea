package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
	"github.com/piimage/piimage/services/supervise"
)

// serviceMain runs one service as the supervisor's child: init service
// NAME --overlay FILE --sock PATH. SIGTERM and SIGINT stop it gracefully,
// SIGHUP reloads the overlay. It returns supervise.DontRestart when the
// service cannot work however often it is restarted.
func serviceMain(ctx context.Context, args []string, stderr io.Writer, registry Registry) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	fs := flag.NewFlagSet("init service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	overlay := fs.String("overlay", "", "the node's overlay file (required)")
	sock := fs.String("sock", "", "unix socket to serve GET /health on (required)")
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: init service NAME --overlay FILE --sock PATH")
		return supervise.DontRestart
	}
	name := args[0]
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *overlay == "" || *sock == "" {
		fmt.Fprintln(stderr, "usage: init service NAME --overlay FILE --sock PATH")
		return supervise.DontRestart
	}
	if err := restrictService(name); err != nil { // caps_linux.go; on success it re-executes
		log.Warn("running with the init's capabilities", "service", name, "err", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	return runService(ctx, serviceOptions{
		name: name, overlay: *overlay, sock: *sock, registry: registry, reload: reload, log: log,
	})
}

// serviceOptions are what runService needs; tests fill them directly.
type serviceOptions struct {
	name, overlay, sock string
	registry            Registry
	// reload receives one value per reload request (SIGHUP).
	reload <-chan struct{}
	log    *slog.Logger
}

// runService builds the named service, serves its health socket, runs it
// until ctx is done and returns the exit code.
func runService(ctx context.Context, o serviceOptions) int {
	log := o.log.With("service", o.name)
	factory, ok := o.registry[o.name]
	if !ok {
		log.Error("unknown service: not built into this binary")
		return supervise.DontRestart
	}
	node, err := overlays.Load(o.overlay)
	if err != nil {
		log.Error("loading the overlay", "err", err)
		return 1
	}
	svc, err := factory(node, log)
	if err != nil {
		log.Error("the overlay gives this service nothing it can run", "err", err)
		return supervise.DontRestart
	}
	os.Remove(o.sock) // a stale socket of an earlier run
	ln, err := net.Listen("unix", o.sock)
	if err != nil {
		log.Error("serving health", "err", err)
		return 1
	}
	srv := &http.Server{Handler: healthHandler(svc), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		srv.Close()
		os.Remove(o.sock)
	}()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("failed", "err", err)
				return 1
			}
			return 0
		case <-o.reload:
			reloadService(svc, o.overlay, log)
		}
	}
}

// reloadService re-reads the overlay and hands it to svc, which keeps its
// old configuration when the new one is invalid or refused.
func reloadService(svc services.Service, path string, log *slog.Logger) {
	node, err := overlays.Load(path)
	if err != nil {
		log.Error("reload: keeping the old configuration: the overlay is invalid", "err", err)
		return
	}
	if err := svc.Reload(node); err != nil {
		log.Error("reload: keeping the old configuration: the service refused the new one", "err", err)
		return
	}
	log.Info("reloaded", "overlay", path)
}

// healthHandler serves GET /health: 200 "ok" or 503 with the error, and
// POST /control/COMMAND?arg=ARG for a service that is a
// services.Controller: 200 with its answer, 404 for an unknown command,
// 409 when it refuses.
func healthHandler(svc services.Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := svc.Health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /control/{command}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		c, ok := svc.(services.Controller)
		if !ok {
			http.Error(w, "this service takes no commands", http.StatusNotFound)
			return
		}
		msg, err := c.Control(r.Context(), r.PathValue("command"), r.URL.Query().Get("arg"))
		var unknown *services.UnknownCommandError
		switch {
		case errors.As(err, &unknown):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusConflict)
		default:
			fmt.Fprintln(w, msg)
		}
	})
	return mux
}
