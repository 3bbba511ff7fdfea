// Package admin is a node's HTTP status server: GET /status (JSON), GET
// /logs?service=NAME (plain text), GET /health, and POST /reboot from the
// node itself.
//
// It listens on the node's eth0 address and on 127.0.0.1 at the overlay's
// admin port, never on the wildcard address and never on the VIP (the VIP
// moves between nodes, and the admin API must name one node).
//
// TODO(auth, OTA): the API is not authenticated yet and has no OTA upload.
// Both are later issues; authentication plugs in as Server.Middleware,
// which wraps every route, and OTA as a route on the same mux.
package admin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/ota"
	"github.com/piimage/piimage/services/supervise"
	"github.com/piimage/piimage/services/wifi"
)

// Release is the image's /piimage/release.json.
type Release struct {
	Version  string `json:"version"`
	Board    string `json:"board"`
	Built    string `json:"built"`
	Kernel   string `json:"kernel"`
	Firmware string `json:"firmware"`
}

// Overlay sources.
const (
	SourceBoot     = "boot"      // the FAT copy, /boot/node.yaml
	SourceLastGood = "last-good" // the data partition's (or state folder's) last good copy
	SourceFile     = "file"      // the --overlay file of process mode
)

// OverlayInfo tells where the running overlay came from.
type OverlayInfo struct {
	Source string `json:"source"`
	Path   string `json:"path"`
	// FallbackReason says why the first choice was not used; "" when it was.
	FallbackReason string `json:"fallback_reason"`
}

// Address is one address of one interface.
type Address struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
}

// Status is the body of GET /status.
type Status struct {
	Hostname      string             `json:"hostname"`
	Role          string             `json:"role"`
	Board         string             `json:"board"`
	Version       string             `json:"version"`
	Slot          string             `json:"slot"`
	UptimeSeconds int64              `json:"uptime_seconds"`
	Addresses     []Address          `json:"addresses"`
	Overlay       OverlayInfo        `json:"overlay"`
	Services      []supervise.Status `json:"services"`
	Firewall      *FirewallStatus    `json:"firewall,omitempty"` // hardening.go
	Time          *TimeStatus        `json:"time,omitempty"`
	// Slots are the image slots and their versions, when the node takes
	// updates.
	Slots []ota.SlotInfo `json:"slots,omitempty"`
	// Data is the data partition's check at boot (PID 1 only).
	Data *DataStatus `json:"data,omitempty"`
	// WiFi is wlan0's association when the overlay configures Wi-Fi.
	WiFi *wifi.Status `json:"wifi,omitempty"`
}

// DataStatus is what the init found and did when it checked and mounted
// the data partition.
type DataStatus struct {
	// Summary is the one line the console showed.
	Summary string `json:"summary"`
	// Checked is set when e2fsck ran; Repaired when it changed something.
	Checked  bool `json:"checked"`
	Repaired bool `json:"repaired"`
	Mounted  bool `json:"mounted"`
	// ReadOnly is set when errors were left: mounted read-only.
	ReadOnly bool `json:"read_only"`
}

// Services is what the server reads about the supervised services; a
// *supervise.Supervisor is one.
type Services interface {
	Status() []supervise.Status
	Logs(name string) ([]string, bool)
}

// InitLogName is the /logs service name of the init's own log.
const InitLogName = "init"

// Server serves the admin API. Fields are read on every request; set them
// before serving. Nil fields mean the documented defaults.
type Server struct {
	// Node is the running overlay. Required.
	Node *overlays.Node
	// Release describes the running image; zero in process mode without
	// --release.
	Release Release
	// Slot is "a" or "b", or "" when not booted from a slot.
	Slot string
	// Overlay tells where Node came from.
	Overlay OverlayInfo
	// Started is when the init started; Now is the clock (nil: time.Now).
	Started time.Time
	Now     func() time.Time
	// Services are the supervised services; nil means none.
	Services Services
	// InitLog is the init's own log, served as /logs?service=init; nil
	// means none.
	InitLog *supervise.Ring
	// Addresses lists the node's addresses; nil means none.
	Addresses func() []Address
	// Reboot, when set, is called (in its own goroutine) by POST /reboot,
	// with poweroff true for POST /reboot?poweroff=1. Until the API has
	// authentication it answers only requests from the loopback address.
	Reboot func(poweroff bool)
	// Middleware, when set, wraps every route: the seam for
	// authentication (TODO(auth): a later issue).
	Middleware func(http.Handler) http.Handler
	// Dashboard is served at GET /dashboard and /dashboard.json; nil means
	// NodeDashboard(s): the cluster dashboard on load balancers, none on
	// web nodes.
	Dashboard *Dashboard
	// Log receives request errors; nil means slog.Default().
	Log *slog.Logger
	// Firewall and Time report the firewall and the clock (hardening.go);
	// nil means not reported.
	Firewall func() *FirewallStatus
	Time     func() *TimeStatus
	// Slots reports the image slots; nil means not reported.
	Slots func() []ota.SlotInfo
	// Data and WiFi report the data partition's check and wlan0; nil
	// means not reported.
	Data *DataStatus
	WiFi func() *wifi.Status
	// Control, when set, serves POST /services/{name}/{command} (behind
	// the token, or from the node itself); nil answers 404.
	Control ControlFunc
}

// Handler returns the API's routes, wrapped in s.Middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.HandleFunc("GET /logs", s.serveLogs)
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.HandleFunc("POST /reboot", s.serveReboot)
	s.mountDashboard(mux)
	var h http.Handler = mux
	if s.Middleware != nil {
		h = s.Middleware(h)
	}
	return h
}

// Snapshot returns what GET /status answers now.
func (s *Server) Snapshot() Status {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	st := Status{
		Hostname:      s.Node.Hostname,
		Role:          s.Node.Role,
		Board:         s.Release.Board,
		Version:       s.Release.Version,
		Slot:          s.Slot,
		UptimeSeconds: int64(now().Sub(s.Started) / time.Second),
		Addresses:     []Address{},
		Overlay:       s.Overlay,
		Services:      []supervise.Status{},
	}
	if st.Board == "" {
		st.Board = s.Node.BoardOrDefault()
	}
	if s.Addresses != nil {
		st.Addresses = append(st.Addresses, s.Addresses()...)
	}
	if s.Services != nil {
		st.Services = append(st.Services, s.Services.Status()...)
	}
	if s.Firewall != nil {
		st.Firewall = s.Firewall()
	}
	if s.Time != nil {
		st.Time = s.Time()
	}
	st.Data = s.Data
	if s.Slots != nil {
		st.Slots = s.Slots()
	}
	if s.WiFi != nil {
		st.WiFi = s.WiFi()
	}
	return st
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Snapshot()); err != nil {
		s.log().Debug("writing /status", "err", err)
	}
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("service")
	var lines []string
	ok := false
	switch {
	case name == InitLogName && s.InitLog != nil:
		lines, ok = s.InitLog.Lines(), true
	case name != "" && s.Services != nil:
		lines, ok = s.Services.Logs(name)
	}
	if !ok {
		names := []string{}
		if s.InitLog != nil {
			names = append(names, InitLogName)
		}
		if s.Services != nil {
			for _, x := range s.Services.Status() {
				names = append(names, x.Name)
			}
		}
		sort.Strings(names)
		code := http.StatusNotFound
		if name == "" {
			code = http.StatusBadRequest
		}
		http.Error(w, fmt.Sprintf("no logs for service %q; known: %s", name, strings.Join(names, ", ")), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	var bad []string
	if s.Services != nil {
		for _, x := range s.Services.Status() {
			if !x.Healthy() {
				bad = append(bad, fmt.Sprintf("%s: %s (%s)", x.Name, x.State, x.Health))
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(bad) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(bad, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) serveReboot(w http.ResponseWriter, r *http.Request) {
	if s.Reboot == nil {
		http.NotFound(w, r)
		return
	}
	// TODO(auth): until the API authenticates, only the node itself may
	// reboot it.
	if !fromLoopback(r.RemoteAddr) {
		http.Error(w, "reboot is allowed only from the node itself until the admin API has authentication", http.StatusForbidden)
		return
	}
	poweroff := r.URL.Query().Get("poweroff") == "1"
	what := "rebooting"
	if poweroff {
		what = "powering off"
	}
	http.Error(w, what, http.StatusAccepted)
	go s.Reboot(poweroff)
}

func fromLoopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// ListenAddrs returns the addresses the admin API of n listens on: the
// loopback one, then eth0's when withEth0. Every one passes CheckAddr.
func ListenAddrs(n *overlays.Node, withEth0 bool) []string {
	port := n.Admin.PortOrDefault()
	out := []string{net.JoinHostPort("127.0.0.1", fmt.Sprint(port))}
	if a := n.Eth0Address(); withEth0 && a.IsValid() {
		out = append(out, net.JoinHostPort(a.Addr().String(), fmt.Sprint(port)))
	}
	return out
}

// CheckAddr refuses listen addresses the admin API must not use: a host
// that is not an IP address, the wildcard address, and n's VIP.
func CheckAddr(addr string, n *overlays.Node) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("admin address %q: the host must be an IP address", addr)
	}
	if ip.IsUnspecified() {
		return fmt.Errorf("admin address %q: never the wildcard address; use the node's own address", addr)
	}
	if n.VIP != nil {
		for _, r := range n.VIP.AllRouters() {
			for _, v := range r.AllAddresses() {
				if v.Addr() == ip.Unmap() {
					return fmt.Errorf("admin address %q: never a VIP, which moves between nodes", addr)
				}
			}
		}
	}
	return nil
}
