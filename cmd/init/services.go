package main

import (
	"log/slog"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
	"github.com/piimage/piimage/services/balancer"
	"github.com/piimage/piimage/services/mirror"
	"github.com/piimage/piimage/services/node"
	"github.com/piimage/piimage/services/vip"
	"github.com/piimage/piimage/services/web"
)

// registry lists the services built into this init, by the names the roles
// use (node.RoleServices): "balancer", "vip", "web", "mirror".
func registry() node.Registry {
	return node.Registry{
		"balancer": newBalancer,
		"vip":      newVIP,
		"web":      web.New,
		"mirror":   mirror.New,
	}
}

// newVIP builds the VIP service tracking the local balancer's health, which
// runs as a sibling process: its health socket answers for it.
func newVIP(n *overlays.Node, log *slog.Logger) (services.Service, error) {
	return vip.NewService(n, log, vip.Options{Balancer: vip.TrackerFunc(node.SiblingHealth("balancer"))})
}

// newBalancer tunes the balancer's own process (a lower GC target keeps it
// under 30 MB at 1,000 connections) and builds it.
func newBalancer(n *overlays.Node, log *slog.Logger) (services.Service, error) {
	balancer.TuneProcess()
	return balancer.New(n, log)
}
