package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestSupervisorScript drives the supervisor with a fake clock and starter
// through scripts and compares the starts and signals it made, as text.
func TestSupervisorScript(t *testing.T) {
	tests := []struct {
		name   string
		script string // one step a line
		want   string // transcript of starter operations and status lines
	}{
		{
			name: "backoff doubles to the cap",
			script: `add
exit 1
advance 999ms
advance 1ms
exit 1
advance 2s
exit 1
advance 4s
exit 2
advance 8s
exit 1
advance 16s
exit 1
advance 32s
exit 1
advance 60s
exit 1
advance 59s
status
advance 1s
status`,
			want: `t=0s start svc pid 101
t=1s start svc pid 102
t=3s start svc pid 103
t=7s start svc pid 104
t=15s start svc pid 105
t=31s start svc pid 106
t=1m3s start svc pid 107
t=2m3s start svc pid 108
status svc state=backoff pid=0 restarts=7 last="exit status 1" health="not running"
t=3m3s start svc pid 109
status svc state=running pid=109 restarts=8 last="exit status 1" health="unknown"`,
		},
		{
			name: "a long run resets the backoff",
			script: `add
exit 1
advance 1s
exit 1
advance 2s
advance 30s
exit 1
advance 1s
status`,
			want: `t=0s start svc pid 101
t=1s start svc pid 102
t=3s start svc pid 103
t=34s start svc pid 104
status svc state=running pid=104 restarts=3 last="exit status 1" health="unknown"`,
		},
		{
			name: "a short run keeps doubling",
			script: `add
exit 1
advance 1s
advance 29s
exit 1
advance 1s
advance 1s
status`,
			want: `t=0s start svc pid 101
t=1s start svc pid 102
t=32s start svc pid 103
status svc state=running pid=103 restarts=2 last="exit status 1" health="unknown"`,
		},
		{
			name: "exit 125 is not restarted",
			script: `add
exit 125
advance 10m
status`,
			want: `t=0s start svc pid 101
status svc state=finished pid=0 restarts=0 last="exit status 125" health="not running"`,
		},
		{
			name: "killed by a signal is restarted",
			script: `add
signal 9
advance 1s
status`,
			want: `t=0s start svc pid 101
t=1s start svc pid 102
status svc state=running pid=102 restarts=1 last="signal: killed" health="unknown"`,
		},
		{
			name: "stop: SIGTERM obeyed",
			script: `add
advance 3s
stop
status
exit 0
stopped
status
advance 1m`,
			want: `t=0s start svc pid 101
t=3s kill -15 101
status svc state=stopping pid=101 restarts=0 last="" health="unknown"
stop returned
status svc state=stopped pid=0 restarts=0 last="exit status 0" health="not running"`,
		},
		{
			name: "stop: SIGTERM ignored, SIGKILL after the grace period",
			script: `add
stop
advance 4999ms
advance 1ms
signal 9
stopped
status`,
			want: `t=0s start svc pid 101
t=0s kill -15 101
t=5s kill -9 101
stop returned
status svc state=stopped pid=0 restarts=0 last="signal: killed" health="not running"`,
		},
		{
			name: "stop during backoff cancels the restart",
			script: `add
exit 1
stop
stopped
advance 1h
status`,
			want: `t=0s start svc pid 101
stop returned
status svc state=stopped pid=0 restarts=0 last="exit status 1" health="not running"`,
		},
		{
			name: "a failing start is retried with backoff",
			script: `fail on
add
status
advance 1s
advance 2s
fail off
advance 4s
status`,
			want: `t=0s start svc failed
status svc state=backoff pid=0 restarts=0 last="start failed: no such file" health="not running"
t=1s start svc failed
t=3s start svc failed
t=7s start svc pid 101
status svc state=running pid=101 restarts=3 last="start failed: no such file" health="unknown"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			st := newFakeStarter(clock)
			s := New(Config{Starter: st, Clock: clock, Log: quietLog()})
			var out []string
			flush := func() {
				if ops := st.take(); ops != "" {
					out = append(out, ops)
				}
			}
			var waits []chan struct{}
			pid := func() int {
				for _, x := range s.Status() {
					return x.PID
				}
				return 0
			}
			for _, step := range strings.Split(tt.script, "\n") {
				verb, arg, _ := strings.Cut(step, " ")
				switch verb {
				case "add":
					if err := s.Add(Spec{Name: "svc", Command: Command{Path: "/x", Args: []string{"svc"}}}); err != nil {
						t.Fatal(err)
					}
				case "advance":
					d, err := time.ParseDuration(arg)
					if err != nil {
						t.Fatal(err)
					}
					clock.Advance(d)
				case "exit":
					code, _ := strconv.Atoi(arg)
					st.end(pid(), Exit{Code: code})
				case "signal":
					n, _ := strconv.Atoi(arg)
					st.end(pid(), Exit{Code: -1, Signal: syscall.Signal(n)})
				case "fail":
					st.mu.Lock()
					st.fail = nil
					if arg == "on" {
						st.fail = errors.New("no such file")
					}
					st.mu.Unlock()
				case "stop":
					// What Stop does, without blocking on each service.
					for _, svc := range s.beginStop() {
						s.mu.Lock()
						if w := s.stopLocked(svc); w != nil {
							waits = append(waits, w)
						}
						s.mu.Unlock()
					}
				case "stopped":
					for _, w := range waits {
						select {
						case <-w:
						default:
							t.Fatalf("step %q: a service has not ended", step)
						}
					}
					flush()
					out = append(out, "stop returned")
				case "status":
					flush()
					for _, x := range s.Status() {
						out = append(out, fmt.Sprintf("status %s state=%s pid=%d restarts=%d last=%q health=%q",
							x.Name, x.State, x.PID, x.Restarts, x.LastExit, x.Health))
					}
				default:
					t.Fatalf("bad step %q", step)
				}
			}
			flush()
			if got := strings.Join(out, "\n"); got != tt.want {
				t.Errorf("transcript:\n%s\n\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestSupervisorHealth(t *testing.T) {
	clock := newFakeClock()
	st := newFakeStarter(clock)
	bad := map[string]error{"/run/b.sock": errors.New("unhealthy: backend down")}
	s := New(Config{Starter: st, Clock: clock, Log: quietLog(),
		Health: func(ctx context.Context, socket string) error { return bad[socket] }})
	for _, name := range []string{"a", "b", "c"} {
		sock := "/run/" + name + ".sock"
		if name == "c" {
			sock = ""
		}
		if err := s.Add(Spec{Name: name, Command: Command{Args: []string{name}}, Socket: sock}); err != nil {
			t.Fatal(err)
		}
	}
	s.CheckHealth(context.Background())
	got := map[string]string{}
	for _, x := range s.Status() {
		got[x.Name] = x.Health
	}
	want := map[string]string{"a": "ok", "b": "unhealthy: backend down", "c": "ok"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("health of %s = %q, want %q", k, got[k], v)
		}
	}
	if err := s.Add(Spec{Name: "a"}); err == nil {
		t.Error("adding a duplicate name succeeded")
	}
}

func TestSupervisorLogs(t *testing.T) {
	clock := newFakeClock()
	st := newFakeStarter(clock)
	s := New(Config{Starter: st, Clock: clock, Log: quietLog(), LogLines: 2})
	if err := s.Add(Spec{Name: "a", Command: Command{Args: []string{"a"}}}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	ring := s.byName["a"].ring
	s.mu.Unlock()
	fmt.Fprint(ring, "one\ntwo\nthree\nfour")
	st.end(101, Exit{Code: 1}) // flushes "four"
	lines, ok := s.Logs("a")
	if !ok || strings.Join(lines, "|") != "three|four" {
		t.Errorf("Logs = %q, %v; want three|four", lines, ok)
	}
	if _, ok := s.Logs("nope"); ok {
		t.Error("Logs of an unknown service reported ok")
	}
}

func TestRing(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		writes []string
		want   []string
	}{
		{"empty", 3, nil, []string{}},
		{"partial waits", 3, []string{"ab", "c\nd"}, []string{"abc"}},
		{"wraps", 2, []string{"1\n2\n3\n"}, []string{"2", "3"}},
		{"crlf", 2, []string{"x\r\n"}, []string{"x"}},
		{"empty lines kept", 3, []string{"\n\n"}, []string{"", ""}},
		{"long line split", 5, []string{strings.Repeat("a", maxLine+1) + "\n"}, []string{strings.Repeat("a", maxLine), "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			r := NewRing(tt.n, func(l string) { seen = append(seen, l) })
			for _, w := range tt.writes {
				r.Write([]byte(w))
			}
			got := r.Lines()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("Lines = %q, want %q", got, tt.want)
			}
			if len(seen) < len(got) {
				t.Errorf("onLine saw %d lines, ring has %d", len(seen), len(got))
			}
		})
	}
}

func TestExitString(t *testing.T) {
	tests := []struct {
		e    Exit
		want string
	}{
		{Exit{Code: 0}, "exit status 0"},
		{Exit{Code: 125}, "exit status 125"},
		{Exit{Code: -1, Signal: syscall.SIGKILL}, "signal: killed"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.e, got, tt.want)
		}
	}
}
