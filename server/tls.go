package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
)

// tlsConfigs are the two sides of a server's TLS (Config.TLSCert, TLSKey, TLSCA): the
// listener's, and its own requests to its peers'.
type tlsConfigs struct {
	server *tls.Config
	client *tls.Config
	// peerCerts: the internal routes require a client certificate signed by TLSCA.
	peerCerts bool
}

// loadTLS reads the certificate, key and CA files; nil without TLS. The server's
// certificate serves clients and peers, and is the one this server presents to its peers:
// it needs the serverAuth and, with TLSCA, the clientAuth extended key usage (or none).
func loadTLS(cfg Config) (*tlsConfigs, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%w: tls_cert/tls_key: %w", ErrInvalidConfig, err)
	}
	t := &tlsConfigs{
		server: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		client: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("%w: tls_ca: %w", ErrInvalidConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls_ca %s holds no PEM certificate", ErrInvalidConfig, cfg.TLSCA)
		}
		t.client.RootCAs = pool
		// Clients of the public API need no certificate; one that is given must verify,
		// so a peer with a certificate of another CA fails its handshake, and the
		// internal routes refuse a connection without one (requirePeerCert).
		t.server.ClientCAs = pool
		t.server.ClientAuth = tls.VerifyClientCertIfGiven
		t.peerCerts = true
	}
	return t, nil
}

// requirePeerCert refuses (401) a request to an internal route whose connection did not
// present a certificate of TLSCA, when TLSCA is set; the cluster token is checked too.
func (s *Server) requirePeerCert(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.tls == nil || !s.tls.peerCerts {
			return next(c)
		}
		if st := c.Request().TLS; st == nil || len(st.VerifiedChains) == 0 {
			return newAPIError(http.StatusUnauthorized, CodeUnauthorized,
				"internal route: a client certificate signed by this cluster's CA (-tls_ca) is required")
		}
		return next(c)
	}
}

// httpsOnly sends a request for an http URL as https: the fan-out builds its replicas'
// URLs from their host:port, and with TLS on every peer listens for TLS.
type httpsOnly struct{ rt http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		r = r.Clone(r.Context())
		r.URL.Scheme = "https"
	}
	return h.rt.RoundTrip(r)
}
