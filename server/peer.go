package server

import "strings"

// peerURL is the URL of path on another server named by addr: "host:port" as published
// in ZooKeeper (the scheme is this server's, as every server of a cluster uses TLS or
// none), or a base URL.
func (s *Server) peerURL(addr, path string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/") + path
	}
	return s.scheme() + "://" + addr + path
}

// scheme is how the servers of this cluster reach each other.
func (s *Server) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}
