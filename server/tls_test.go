package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/replication"
	"github.com/zkv-dev/zkv/server"
)

// testPKI is a throwaway CA and one certificate it signed for 127.0.0.1, good for both
// ends of a TLS connection (serverAuth and clientAuth), written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	cert                      tls.Certificate
}

func newTestPKI(t testing.TB, name string) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name + " server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", der)
	write(p.keyFile, "EC PRIVATE KEY", keyDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	if p.cert, err = tls.LoadX509KeyPair(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) config(cfg *server.Config) {
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = p.certFile, p.keyFile, p.caFile
}

// client is an https client that trusts p's CA, presenting cert when given (even when
// the server names other CAs as acceptable: Go's client would otherwise send none).
func (p *testPKI) client(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: p.pool}
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: tc}}
}

// useTLSClient makes the package's test client (do, put, the node helpers) trust p's CA
// for the rest of the test.
func useTLSClient(t *testing.T, p *testPKI) {
	tr := testClient.Transport.(*http.Transport)
	tr.CloseIdleConnections()
	tr.TLSClientConfig = &tls.Config{RootCAs: p.pool}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		tr.TLSClientConfig = nil
	})
}

func getStatus(hc *http.Client, url string) (int, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestTLSCluster: servers with -tls_cert/-tls_key/-tls_ca replicate, forward and sync on
// join over https; plain HTTP to their port gets nowhere; the internal routes refuse a
// client without a certificate of the cluster's CA, and a certificate of another CA fails
// the handshake.
func TestTLSCluster(t *testing.T) {
	pki := newTestPKI(t, "zkv")
	useTLSClient(t, pki)
	c := newFakeCluster()
	start := func(id string, edit ...func(*server.Config)) *node {
		n := startNode(t, c, id, withConfig(func(cfg *server.Config) {
			pki.config(cfg)
			for _, e := range edit {
				e(cfg)
			}
		}))
		n.url = "https://" + n.addr
		return n
	}
	a := start("a")
	a.waitLeading(t)
	b, cc := start("b"), start("c")
	b.waitReady(t)
	cc.waitReady(t)

	// A write through a follower: forwarded to the leader over https, replicated over https.
	if r := put(t, b.url, "k1", "v1"); r.code != 200 || r.json(t)["leader"] != a.addr {
		t.Fatalf("PUT through b: %d %s", r.code, r.body)
	}
	for _, n := range []*node{a, b, cc} {
		if !hasValue(n, "k1", "v1") {
			t.Errorf("%s lacks k1 after an ack-all 200 over TLS", n.s.ID())
		}
	}
	// A server that syncs on join pulls the leader's snapshot over https.
	d := start("d", func(cfg *server.Config) { cfg.SyncOnJoin = true })
	d.waitReady(t)
	if !hasValue(d, "k1", "v1") {
		t.Error("d (sync on join over TLS) lacks k1")
	}

	// Plain HTTP to a TLS port: no answer of the API, and nothing written.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer plain.CloseIdleConnections()
	if code, err := getStatus(plain, "http://"+a.addr+"/v1/kv/k1"); err == nil && code != http.StatusBadRequest {
		t.Errorf("plain HTTP GET to a TLS port: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+a.addr+"/v1/kv/k1", strings.NewReader(`{"value":"plain"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := plain.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a plain-HTTP PUT was taken")
		}
	}
	if !hasValue(a, "k1", "v1") {
		t.Error("a plain-HTTP request changed k1")
	}

	// The public API needs no client certificate; the internal routes need one of the
	// cluster's CA.
	anon := pki.client(nil)
	defer anon.CloseIdleConnections()
	if code, err := getStatus(anon, a.url+"/v1/kv/k1"); err != nil || code != 200 {
		t.Errorf("public GET without a client certificate: %d, %v", code, err)
	}
	if code, err := getStatus(anon, a.url+replication.PathPosition); err != nil || code != http.StatusUnauthorized {
		t.Errorf("internal route without a client certificate: %d, %v (want 401)", code, err)
	}
	peer := pki.client(&pki.cert)
	defer peer.CloseIdleConnections()
	if code, err := getStatus(peer, a.url+replication.PathPosition); err != nil || code != 200 {
		t.Errorf("internal route with the cluster's certificate: %d, %v", code, err)
	}
	other := newTestPKI(t, "other")
	stranger := pki.client(&other.cert)
	defer stranger.CloseIdleConnections()
	if code, err := getStatus(stranger, a.url+replication.PathPosition); err == nil {
		t.Errorf("a peer with a certificate of another CA got %d", code)
	}
	// And a server of another CA cannot be reached by the cluster's servers either: its
	// certificate does not verify (the client side of the same check).
	if _, err := getStatus(pki.client(&pki.cert), "https://"+startOther(t, other)+"/healthz"); err == nil {
		t.Error("a server with a certificate of another CA was trusted")
	}
}

// startOther serves /healthz with other's certificate and returns its address.
func startOther(t *testing.T, other *testPKI) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{other.cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }),
		ErrorLog: log.New(io.Discard, "", 0)} // the refused handshakes
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func TestTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t, "zkv")
	c := newFakeCluster()
	for name, cfg := range map[string]server.Config{
		"cert without key": {TLSCert: pki.certFile},
		"ca without cert":  {TLSCA: pki.caFile},
		"missing file":     {TLSCert: pki.certFile + ".gone", TLSKey: pki.keyFile},
		"ca not pem":       {TLSCert: pki.certFile, TLSKey: pki.keyFile, TLSCA: pki.keyFile},
	} {
		cfg.Address = "127.0.0.1:1"
		if _, err := server.New(cfg, server.Deps{Elector: c.elector(name, cfg.Address)}); err == nil {
			t.Errorf("%s: New took it", name)
		}
	}
}
