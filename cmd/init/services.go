package main

import "github.com/piimage/piimage/services/node"

// registry lists the services built into this init, by the names the roles
// use (node.RoleServices): "balancer", "vip", "web", "mirror". A service
// package adds itself here with its services.Factory, e.g.
//
//	"web": web.New,
func registry() node.Registry {
	return node.Registry{}
}
