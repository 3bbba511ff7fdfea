package wifi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nlRadio is a Radio on Linux: nl80211 requests on one generic netlink
// socket, notifications of the "mlme" group on another.
type nlRadio struct {
	name string
	log  *slog.Logger

	mu      sync.Mutex // guards opening and closing
	req     *nlConn
	ev      *nlConn
	fam     family
	ifindex atomic.Uint32
	events  chan Event
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewRadio returns the Radio of the interface called name. It opens
// nothing until Setup; log (nil: none) hears about what Setup works
// around.
func NewRadio(name string, log *slog.Logger) Radio {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &nlRadio{name: name, log: log, events: make(chan Event, 16), done: make(chan struct{})}
}

func (r *nlRadio) Events() <-chan Event { return r.events }

// open resolves the nl80211 family and starts listening to its
// notifications, once.
func (r *nlRadio) open() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.req != nil {
		return nil
	}
	req, err := dialGeneric()
	if err != nil {
		return err
	}
	answer, err := req.request(familyMsg(0))
	if err != nil {
		req.Close()
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("the kernel has no nl80211 (cfg80211 is not loaded): %w", err)
		}
		return fmt.Errorf("resolving the nl80211 family: %w", err)
	}
	if len(answer) == 0 {
		req.Close()
		return errors.New("resolving the nl80211 family: no answer")
	}
	fam, err := parseFamily(answer[0])
	if err != nil {
		req.Close()
		return fmt.Errorf("resolving the nl80211 family: %w", err)
	}
	mlme, ok := fam.Groups["mlme"]
	if !ok {
		req.Close()
		return errors.New("nl80211 has no mlme multicast group")
	}
	ev, err := dialGeneric()
	if err != nil {
		req.Close()
		return err
	}
	if err := ev.join(mlme); err != nil {
		req.Close()
		ev.Close()
		return fmt.Errorf("joining nl80211's mlme group: %w", err)
	}
	r.req, r.ev, r.fam = req, ev, fam
	r.wg.Go(r.readEvents)
	return nil
}

// readEvents forwards the interface's CONNECT and DISCONNECT
// notifications until the socket is closed.
func (r *nlRadio) readEvents() {
	for {
		b, err := r.ev.recv()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				// Notifications were lost; the state machine's
				// connect timeout covers a lost CONNECT.
				r.log.Warn("wifi: nl80211 notifications overran the socket buffer")
				continue
			}
			return
		}
		evs, err := parseEvents(b, r.fam.ID)
		if err != nil {
			r.log.Debug("wifi: malformed nl80211 notification", "err", err)
		}
		for _, e := range evs {
			if e.Ifindex != r.ifindex.Load() {
				continue
			}
			select {
			case r.events <- e.event():
			case <-r.done:
				return
			}
		}
	}
}

func (r *nlRadio) Setup(ctx context.Context, p SetupParams) error {
	if err := r.open(); err != nil {
		return err
	}
	ifc, err := net.InterfaceByName(r.name)
	if err != nil {
		return fmt.Errorf("%s does not exist (is the Wi-Fi driver loaded, and its firmware in /lib/firmware?): %w", r.name, err)
	}
	r.ifindex.Store(uint32(ifc.Index))
	answer, err := r.req.request(interfaceMsg(r.fam.ID, 0, uint32(ifc.Index)))
	if err != nil {
		return fmt.Errorf("asking nl80211 about %s (is it a Wi-Fi interface?): %w", r.name, err)
	}
	if len(answer) == 0 {
		return fmt.Errorf("asking nl80211 about %s: no answer", r.name)
	}
	wiphy, err := parseWiphy(answer[0])
	if err != nil {
		return fmt.Errorf("asking nl80211 about %s: %w", r.name, err)
	}
	if p.Secured {
		ok, err := r.offloadsPSK(wiphy)
		if err != nil {
			return err
		}
		if !ok {
			return Permanent(fmt.Errorf("%s: %w (it lacks NL80211_EXT_FEATURE_4WAY_HANDSHAKE_STA_PSK, and piimage has no host-side supplicant; the Raspberry Pi's brcmfmac has it)", r.name, ErrOffloadUnsupported))
		}
	}
	if _, err := r.req.request(regMsg(r.fam.ID, 0, p.Country)); err != nil && !errors.Is(err, unix.EALREADY) {
		// Not fatal: the radio then keeps its default (world) domain.
		r.log.Warn("wifi: setting the regulatory domain", "country", p.Country, "err", err)
	}
	link, err := netlink.LinkByName(r.name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", r.name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s up: %w", r.name, err)
	}
	// A connection left from before (a restarted init) would make CONNECT
	// fail with EALREADY.
	r.Disconnect(ctx)
	return nil
}

// offloadsPSK reports whether the wiphy does the WPA2-PSK 4-way handshake
// itself.
func (r *nlRadio) offloadsPSK(wiphy uint32) (bool, error) {
	parts, err := r.req.request(wiphyMsg(r.fam.ID, 0, wiphy))
	if err != nil {
		return false, fmt.Errorf("reading the radio's features: %w", err)
	}
	for _, p := range parts {
		if hasExtFeature(extFeatures(p), extFeature4WayHandshakeStaPSK) {
			return true, nil
		}
	}
	return false, nil
}

func (r *nlRadio) Connect(ctx context.Context, p ConnectParams) error {
	if r.req == nil {
		return errors.New("connecting: the radio is not set up")
	}
	if _, err := r.req.request(connectMsg(r.fam.ID, 0, r.ifindex.Load(), p)); err != nil {
		return fmt.Errorf("sending CONNECT: %w", err)
	}
	return nil
}

func (r *nlRadio) Disconnect(ctx context.Context) error {
	if r.req == nil {
		return nil
	}
	_, err := r.req.request(disconnectMsg(r.fam.ID, 0, r.ifindex.Load()))
	if errors.Is(err, unix.ENOTCONN) {
		return nil
	}
	return err
}

func (r *nlRadio) Signal(ctx context.Context) (int, error) {
	if r.req == nil {
		return 0, errors.New("reading the signal: the radio is not set up")
	}
	parts, err := r.req.request(stationMsg(r.fam.ID, 0, r.ifindex.Load()))
	if err != nil {
		return 0, fmt.Errorf("reading the signal: %w", err)
	}
	for _, p := range parts {
		if s, ok := parseSignal(p); ok {
			return s, nil
		}
	}
	return 0, errors.New("reading the signal: the radio reports none")
}

func (r *nlRadio) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	default:
	}
	close(r.done)
	var err error
	if r.req != nil {
		err = errors.Join(r.req.Close(), r.ev.Close())
	}
	r.wg.Wait()
	return err
}
