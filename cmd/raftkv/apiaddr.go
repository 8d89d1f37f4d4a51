package main

import (
	"net"
	"os"
)

// apiAddress is the HTTP API address the node reports to the cluster
// (host.Config.APIAddress): scheme://host:port of --http-addr, with the
// host name when it listens on every interface, as for --advertise-addr.
func apiAddress(tls bool, ln net.Addr) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	addr := reachableAddress(ln)
	if addr == "" {
		return ""
	}
	return scheme + "://" + addr
}

// reachableAddress is a listener's host:port as others reach it: the host
// name when it listens on every interface ("" if that is unknown).
func reachableAddress(ln net.Addr) string {
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		name, err := os.Hostname()
		if err != nil || name == "" {
			return ""
		}
		host = name
	}
	return net.JoinHostPort(host, port)
}
