package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHelpListsEveryCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"-h"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out.String(), "  "+c.name+" ") {
			t.Errorf("-h lacks %q:\n%s", c.name, out.String())
		}
	}
	if code := Main(context.Background(), []string{"nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "nope"`) {
		t.Fatalf("unknown command: exit %d, %q", code, errOut.String())
	}
	if code := Main(context.Background(), nil, &out, &errOut); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
}

func TestClientCommands(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"no_leader","message":"no leader known"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"key":"a/b","value":"v","found":true,"version":2,"role":"leader"}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if code := Main(ctx, []string{"get", "-addr", addr, "-leader", "a/b"}, &out, &errOut); code != 0 {
		t.Fatalf("get: exit %d: %s", code, errOut.String())
	}
	var kv map[string]any
	if err := json.Unmarshal(out.Bytes(), &kv); err != nil || kv["value"] != "v" || kv["found"] != true {
		t.Fatalf("get printed %q (%v)", out.String(), err)
	}
	out.Reset()
	if code := Main(ctx, []string{"put", "-addr", addr, "a/b", "v"}, &out, &errOut); code != 0 {
		t.Fatalf("put: exit %d", code)
	}
	if code := Main(ctx, []string{"status", "-addr", addr}, &out, &errOut); code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	errOut.Reset()
	if code := Main(ctx, []string{"delete", "-addr", addr, "a/b"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `"code": "no_leader"`) {
		t.Fatalf("delete: exit %d, %s", code, errOut.String())
	}
	if code := Main(ctx, []string{"put", "-addr", addr, "only-key"}, &out, &errOut); code != 2 {
		t.Fatalf("put with one argument: exit %d", code)
	}
	want := []string{"GET /v1/kv/a/b?consistency=leader", "PUT /v1/kv/a/b", "GET /v1/status", "DELETE /v1/kv/a/b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("requests %q, want %q", got, want)
	}
}

func TestScenariosFlagsAndHosts(t *testing.T) {
	var errOut bytes.Buffer
	if code := Main(context.Background(), []string{"scenarios", "-h"}, &errOut, &errOut); code != 0 || !strings.Contains(errOut.String(), "-graceful") {
		t.Fatalf("scenarios -h: exit %d\n%s", code, errOut.String())
	}
	hs, err := splitHosts("a, b:1 ,c", 2181)
	if err != nil || strings.Join(hs, ",") != "a:2181,b:1,c:2181" {
		t.Fatalf("splitHosts = %v, %v", hs, err)
	}
	// -addrs with nothing listening: scenario 1 fails, so the exit code is 1; logs are written.
	logs := t.TempDir()
	var out bytes.Buffer
	code := Main(context.Background(), []string{"scenarios", "-addrs", "127.0.0.1:1", "-logs", logs, "-no_color", "-election_timeout", "300ms"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "logs: "+logs) {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if m, _ := filepath.Glob(filepath.Join(logs, "*", "driver.log")); len(m) != 1 {
		t.Fatalf("driver.log: %v", m)
	}
}
