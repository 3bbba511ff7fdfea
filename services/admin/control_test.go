package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/piimage/piimage/services/supervise"
)

func TestServiceCommands(t *testing.T) {
	cc, c := credentials(t)
	pin, err := cc.Pin()
	if err != nil {
		t.Fatal(err)
	}
	s := testServer(&fakeServices{})
	var got []string
	s.Control = func(_ context.Context, service, command, arg string) (string, error) {
		got = append(got, service+" "+command+" "+arg)
		switch {
		case service == "vip" && command == "handover":
			return "handed over", nil
		case service == "balancer" && command == "drain":
			return arg + " drained", nil
		case service == "web":
			return "", &supervise.ControlError{Status: http.StatusNotFound, Msg: "this service takes no commands"}
		}
		return "", fmt.Errorf("socket gone")
	}
	addr := serveSplit(t, s, c, nil)
	tlsc := tlsClient(pin, cc.Token)
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		code   int
		want   string
	}{
		{"handover over TLS", tlsc, "https://" + addr + "/services/vip/handover", 200, "handed over"},
		{"drain with argument", tlsc, "https://" + addr + "/services/balancer/drain?arg=web01", 200, "web01 drained"},
		{"no commands", tlsc, "https://" + addr + "/services/web/drain", 404, "takes no commands"},
		{"service failing", tlsc, "https://" + addr + "/services/mirror/sync", 502, "socket gone"},
		{"without token", tlsClient(pin, ""), "https://" + addr + "/services/vip/handover", 401, "token"},
		{"plain from the node itself", &http.Client{}, "http://" + addr + "/services/vip/handover", 200, "handed over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := status(t, tc.client, "POST", tc.url, nil)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%d %q, want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	if code, _ := get(t, s.PlainHandler(), "POST", "/services/vip/handover", "192.168.1.50:4000"); code != http.StatusForbidden {
		t.Errorf("plain command from another host: %d, want 403", code)
	}
	want := "vip handover |balancer drain web01|web drain |mirror sync |vip handover "
	if strings.Join(got, "|") != want {
		t.Errorf("commands reaching the services: %q, want %q", strings.Join(got, "|"), want)
	}
}
