package supervise

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv switches the test binary into one of the child behaviours below
// when the supervisor re-executes it.
const childEnv = "SUPERVISE_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child runs as a supervised process and returns its exit code.
func child(mode string) int {
	switch mode {
	case "print":
		fmt.Println("line 1")
		fmt.Println("line 2")
		fmt.Fprintln(os.Stderr, "an error line")
		fmt.Print("no newline")
		return DontRestart
	case "crash":
		fmt.Println("crashing")
		return 1
	case "exit125":
		return DontRestart
	case "orphan":
		exe, _ := os.Executable()
		p, err := os.StartProcess(exe, []string{"grandchild"}, &os.ProcAttr{
			Env: []string{childEnv + "=sleep"}, Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			fmt.Println(err)
			return 2
		}
		fmt.Println(p.Pid)
		return DontRestart // without waiting: the grandchild is orphaned
	case "sleep":
		time.Sleep(200 * time.Millisecond)
		return 0
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return 0
	case "obeyterm":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		select {
		case <-c:
			fmt.Println("got SIGTERM")
			return 0
		case <-time.After(time.Minute):
			return 3
		}
	}
	return 99
}

// startReal returns a supervisor over a real Reaper that runs until the
// test ends.
func startReal(t *testing.T, cfg Config) *Supervisor {
	t.Helper()
	restore, err := SetSubreaper()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReaper(quietLog())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	cfg.Starter = r
	cfg.Log = quietLog()
	s := New(cfg)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := s.Stop(sctx); err != nil {
			t.Error(err)
		}
		cancel()
		<-done
		restore()
	})
	return s
}

func selfSpec(t *testing.T, name, mode string) Spec {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Name: name, Command: Command{Path: exe, Args: []string{name}, Env: []string{childEnv + "=" + mode,
		// Under -race a process sleeps 1s at exit by default, longer
		// than the grace periods here.
		"GORACE=atexit_sleep_ms=0"}}}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(s *Supervisor, name string) Status {
	for _, x := range s.Status() {
		if x.Name == name {
			return x
		}
	}
	return Status{}
}

func TestRealProcesses(t *testing.T) {
	s := startReal(t, Config{MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Grace: 300 * time.Millisecond})
	for _, x := range []struct{ name, mode string }{
		{"printer", "print"}, {"crasher", "crash"}, {"quitter", "exit125"},
	} {
		if err := s.Add(selfSpec(t, x.name, x.mode)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "printer to finish", func() bool { return status(s, "printer").State == StateFinished })
	lines, _ := s.Logs("printer")
	if got, want := strings.Join(lines, "|"), "line 1|line 2|an error line|no newline"; got != want {
		t.Errorf("printer logs = %q, want %q", got, want)
	}
	waitFor(t, "quitter to finish", func() bool { return status(s, "quitter").State == StateFinished })
	if st := status(s, "quitter"); st.LastExit != "exit status 125" || st.Restarts != 0 {
		t.Errorf("quitter = %+v, want exit 125 and no restarts", st)
	}
	waitFor(t, "crasher to restart 3 times", func() bool { return status(s, "crasher").Restarts >= 3 })
	if st := status(s, "crasher"); st.LastExit != "exit status 1" {
		t.Errorf("crasher last exit = %q", st.LastExit)
	}
	if lines, _ := s.Logs("crasher"); len(lines) < 3 || lines[0] != "crashing" {
		t.Errorf("crasher logs = %q", lines)
	}
}

func TestRealStop(t *testing.T) {
	s := startReal(t, Config{Grace: 300 * time.Millisecond})
	for _, x := range []struct{ name, mode string }{{"stubborn", "ignoreterm"}, {"polite", "obeyterm"}} {
		if err := s.Add(selfSpec(t, x.name, x.mode)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"stubborn", "polite"} {
		waitFor(t, name+" to be ready", func() bool {
			l, _ := s.Logs(name)
			return len(l) > 0 && l[0] == "ready"
		})
	}
	pid := status(s, "stubborn").PID
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("process group of %d = %d, %v; want its own", pid, pgid, err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("Stop took %v; want the 300ms grace period then SIGKILL", took)
	}
	if st := status(s, "stubborn"); st.State != StateStopped || st.LastExit != "signal: killed" {
		t.Errorf("stubborn = %+v, want stopped by SIGKILL", st)
	}
	if st := status(s, "polite"); st.State != StateStopped || st.LastExit != "exit status 0" {
		l, _ := s.Logs("polite")
		t.Errorf("polite = %+v, want stopped with exit 0; logs %q", st, l)
	}
	if l, _ := s.Logs("polite"); strings.Join(l, "|") != "ready|got SIGTERM" {
		t.Errorf("polite logs = %q", l)
	}
}

// TestRealOrphan checks that an orphaned grandchild, reparented to the test
// process as a subreaper, is reaped rather than left a zombie.
func TestRealOrphan(t *testing.T) {
	s := startReal(t, Config{})
	if err := s.Add(selfSpec(t, "parent", "orphan")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "parent to finish", func() bool { return status(s, "parent").State == StateFinished })
	lines, _ := s.Logs("parent")
	if len(lines) != 1 {
		t.Fatalf("parent logs = %q, want the grandchild's pid", lines)
	}
	stat := "/proc/" + lines[0] + "/stat"
	waitFor(t, "the orphan to be reaped", func() bool {
		_, err := os.Stat(stat)
		return os.IsNotExist(err)
	})
}

func TestCheckSocket(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		code    int
		body    string
		wantErr string
	}{
		{"ok", 200, "ok", ""},
		{"unhealthy", 503, "backend down\n", "unhealthy: backend down"},
		{"empty body", 500, "", "unhealthy: 500 Internal Server Error"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/health" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tt.code)
				fmt.Fprint(w, tt.body)
			})}
			go srv.Serve(ln)
			defer srv.Close()
			err = CheckSocket(context.Background(), sock)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("CheckSocket = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := CheckSocket(context.Background(), filepath.Join(dir, "missing.sock")); err == nil {
		t.Error("CheckSocket of a missing socket succeeded")
	}
}
