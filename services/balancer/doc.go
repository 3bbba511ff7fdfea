// Package balancer is the load balancer of lbmaster and lbbackup nodes: an
// HTTP reverse proxy with keep-alive connection pools to its backends, or a
// plain TCP proxy, in the manner of HAProxy. HTTP/1 clients (plain or TLS)
// are served by its own strict HTTP/1.1 engine (h1.go), HTTP/2 clients by
// net/http and httputil.ReverseProxy (http.go). On Linux, plain-HTTP
// clients are served by event loops, one per CPU, that keep a client and
// its backend connections on one epoll instance (evloop_linux.go); they
// hand anything out of the ordinary to the goroutine engine of h1.go.
//
// It spreads requests with roundrobin (weighted), leastconn, or consistent
// hashes of the client address, URI, a query parameter or a header; checks
// its backends actively (HTTP or TCP, with HAProxy's inter/fall/rise) and
// passively (failed requests); retries a request that could not connect on
// another backend; abandons the exchanges of a backend marked down that
// have no answer yet, moving those safe to repeat to another backend
// (markdown.go); uses backups only while every primary is down; keeps
// sessions on a backend with a cookie; terminates TLS with certificates
// chosen by SNI; and serves a password-protected stats page with
// Prometheus metrics. Reload changes backends, weights and checks without
// dropping a request.
//
// # From an HAProxy configuration
//
// The overlay's balancer section (overlays.Balancer) says what an HAProxy
// frontend, backend and stats listener say:
//
//	bind *:80                           port: 80 (bind: to choose an address)
//	mode http | mode tcp                mode: http | tcp
//	balance roundrobin                  algorithm: roundrobin
//	balance leastconn | source          algorithm: leastconn | source
//	balance uri len 10 depth 2          algorithm: uri, uri_len: 10, uri_depth: 2
//	balance url_param id                algorithm: url_param, hash_param: id
//	balance hdr(Host)                   algorithm: hdr, hash_header: Host
//	  use_domain_only                   hash_domain_only: true
//	hash-type consistent                always (weighted rendezvous hashing)
//	server web1 10.0.0.1:80 weight 3    backends: [{name: web1, address: "10.0.0.1:80", weight: 3}]
//	  backup | maxconn 50 | no check    backup: true | max_conn: 50 | no_check: true
//	  set server ... state drain        drain: true (then Reload)
//	check inter 500 fall 3 rise 2       check: {interval: 500ms, fall: 3, rise: 2}
//	option httpchk GET /health          check: {type: http, path: /health}
//	timeout check 300ms                 check: {timeout: 300ms}
//	observe layer4 + error-limit 5      error_limit: 5 (on by default)
//	retries 1 + option redispatch       retries: 1 (the default)
//	on-marked-down shutdown-sessions    always, for exchanges without an answer yet:
//	  + retry-on (safe requests only)     GET/HEAD/OPTIONS/TRACE move, others get 502
//	option forwardfor                   forwarded: xff (the default; rfc7239, both, none)
//	send-proxy-v2                       send_proxy_v2: true
//	cookie SERVERID insert indirect     cookie: {name: SERVERID, mode: insert}
//	cookie JSESSIONID prefix            cookie: {name: JSESSIONID, mode: prefix}
//	timeout connect/client/server       timeouts: {connect: 5s, client: 30s, server: 30s}
//	timeout queue / http-keep-alive     timeouts: {queue: 5s, keep_alive: 60s}
//	maxconn 10000                       limits: {max_conn: 10000}
//	tune.bufsize / max header size      limits: {max_header_bytes: 16384}
//	bind :443 ssl crt a.pem crt b.pem   tls: {port: 443, certs: [{cert: ..., key: ...}, ...]}
//	  alpn h2,http/1.1                  (the default; tls: {no_http2: true} for HTTP/1.1 only)
//	listen stats :1936                  stats: {port: 1936, path: /haproxy-stats,
//	  stats uri / stats auth u:p          user: u, password_hash: <HashPassword(p)>}
//	  stats hide-version                  (always: no version is ever shown)
//
// The stats password is stored as a PBKDF2 hash made by HashPassword, never
// in clear, and is compared in constant time.
package balancer
