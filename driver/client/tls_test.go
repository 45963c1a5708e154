package client_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/driver/client"
)

// A client WithTLS speaks https to a host:port address, trusting the CA file given; without
// it, the same address gets nowhere.
func TestWithTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"key":"k","value":"v","found":true,"version":1}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain client's refused request
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := client.CAPool(ca)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	c := client.New(addr, client.WithTLS(&tls.Config{RootCAs: pool}))
	defer c.Close()
	kv, err := c.Get(context.Background(), "k")
	if err != nil || kv.Value != "v" {
		t.Fatalf("GET over TLS: %+v, %v", kv, err)
	}
	plain := client.New(addr)
	defer plain.Close()
	if _, err := plain.Get(context.Background(), "k"); err == nil {
		t.Fatal("a plain-HTTP client got an answer from a TLS server")
	}
	if _, err := client.CAPool(filepath.Join(t.TempDir(), "none.pem")); err == nil {
		t.Error("CAPool of a missing file")
	}
}
