package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Host != "127.0.0.1" || c.Port != 5000 || c.ID != "127.0.0.1:5000" || c.SessionTimeout != 4*time.Second ||
		c.Ack != "all" || c.MaxKeyBytes != 1024 || c.MaxValueBytes != 1<<20 || c.SyncOnJoin || c.ClusterToken != "" ||
		o.logFormat != "text" || !reflect.DeepEqual(c.ZooKeeper, []string{"127.0.0.1:2181"}) {
		t.Fatalf("defaults: %+v %s", c, o.logFormat)
	}
}

func TestFlagsEnvFallbackAndPrecedence(t *testing.T) {
	e := env("ZKV_PORT", "6000", "ZKV_HOST", "127.0.0.2", "ZKV_ACK", "majority", "ZKV_SESSION_TIMEOUT", "2500",
		"ZKV_SYNC_ON_JOIN", "true", "ZKV_CLUSTER_TOKEN", "tok", "ZKV_LOG_FORMAT", "json", "ZKV_ZOOKEEPER", "z1,z2:2182",
		"ZKV_ZOOKEEPER_PORT", "2190", "ZKV_MAX_KEY_BYTES", "10", "ZKV_ID", "env-id")
	o, err := parseFlags([]string{"-port", "7000", "-ack", "leader"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Port != 7000 || c.Ack != "leader" {
		t.Errorf("flags must win over the environment: port %d ack %s", c.Port, c.Ack)
	}
	if c.Host != "127.0.0.2" || c.SessionTimeout != 2500*time.Millisecond || !c.SyncOnJoin || c.ClusterToken != "tok" ||
		o.logFormat != "json" || c.MaxKeyBytes != 10 || c.ID != "env-id" {
		t.Errorf("environment fallback: %+v %s", c, o.logFormat)
	}
	if want := []string{"z1:2190", "z2:2182"}; !reflect.DeepEqual(c.ZooKeeper, want) {
		t.Errorf("ensemble %v, want %v", c.ZooKeeper, want)
	}
}

func TestFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-ack", "some"}, {"-log_format", "xml"}, {"-session_timeout", "soon"}, {"-port", "0"},
		{"-zookeeper", " , "}, {"-zookeeper", "h:notaport"}, {"-max_key_bytes", "0"}, {"extra"},
	} {
		if _, err := parseFlags(args, env(), io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, err := parseFlags(nil, env("ZKV_PORT", "x"), io.Discard); err == nil || !strings.Contains(err.Error(), "ZKV_PORT") {
		t.Errorf("bad $ZKV_PORT: %v", err)
	}
	if _, err := parseFlags([]string{"-h"}, env(), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestEnsemble(t *testing.T) {
	got, err := ensemble("a, b:1, [::1]:3,::1", 2181)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:2181", "b:1", "[::1]:3", "[::1]:2181"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestHelpListsFlags(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-h"}, env(), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []string{"-host", "-port", "-zookeeper", "-zookeeper_port", "-id", "-session_timeout",
		"-cluster_token", "-ack", "-max_key_bytes", "-max_value_bytes", "-sync_on_join", "-log_format"} {
		if !strings.Contains(out.String(), f+" ") && !strings.Contains(out.String(), f+"\n") {
			t.Errorf("-h lacks %s", f)
		}
	}
}

func TestFlagsAdvertiseAndUnsafeFencing(t *testing.T) {
	o, err := parseFlags([]string{"-port", "5001", "-advertise", "127.0.0.1:6001"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Address != "127.0.0.1:6001" || o.cfg.ID != "127.0.0.1:5001" || o.cfg.UnsafeDisableFencing {
		t.Errorf("-advertise: address %q id %q unsafe %v", o.cfg.Address, o.cfg.ID, o.cfg.UnsafeDisableFencing)
	}
	o, err = parseFlags(nil, env("ZKV_UNSAFE_DISABLE_FENCING", "true", "ZKV_ADVERTISE", "h:1"), io.Discard)
	if err != nil || !o.cfg.UnsafeDisableFencing || o.cfg.Address != "h:1" {
		t.Errorf("env fallback: %+v %v", o.cfg, err)
	}
	if _, err := parseFlags([]string{"-advertise", "no-port"}, env(), io.Discard); err == nil {
		t.Error("-advertise without a port: no error")
	}
}

func TestFlagsClusterTokenFileAndMinInSync(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-cluster_token_file", f, "-min_insync", "2", "-replica_lag_max", "300ms"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.ClusterToken != "s3cret" || o.cfg.MinInSync != 2 || o.cfg.ReplicaLagMax != 300*time.Millisecond {
		t.Fatalf("token %q min_insync %d lag %v", o.cfg.ClusterToken, o.cfg.MinInSync, o.cfg.ReplicaLagMax)
	}
	for _, args := range [][]string{
		{"-cluster_token_file", f, "-cluster_token", "x"},
		{"-cluster_token_file", filepath.Join(t.TempDir(), "missing")},
		{"-min_insync", "0"},
		{"-replica_lag_max", "0s"},
	} {
		if _, err := parseFlags(args, env(), io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestFlagsQuota(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want int64
	}{
		{nil, nil, 2 << 30},
		{[]string{"-quota_bytes", "4096"}, nil, 4096},
		{nil, []string{"ZKV_QUOTA_BYTES", "8192"}, 8192},
		{[]string{"-quota_bytes", "0"}, nil, -1}, // no quota
	} {
		o, err := parseFlags(tc.args, env(tc.env...), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if o.cfg.QuotaBytes != tc.want {
			t.Errorf("%v %v: QuotaBytes %d, want %d", tc.args, tc.env, o.cfg.QuotaBytes, tc.want)
		}
	}
	for _, bad := range []string{"-1", "lots"} {
		if _, err := parseFlags([]string{"-quota_bytes", bad}, env(), io.Discard); err == nil {
			t.Errorf("-quota_bytes %s accepted", bad)
		}
	}
}

func TestFlagMaxWatchers(t *testing.T) {
	o, err := parseFlags(nil, env(), io.Discard)
	if err != nil || o.cfg.MaxWatchers != server.DefaultMaxWatchers {
		t.Fatalf("default max_watchers %d (%v)", o.cfg.MaxWatchers, err)
	}
	o, err = parseFlags(nil, env("ZKV_MAX_WATCHERS", "12"), io.Discard)
	if err != nil || o.cfg.MaxWatchers != 12 {
		t.Fatalf("max_watchers from the environment: %d (%v)", o.cfg.MaxWatchers, err)
	}
	for _, v := range []string{"0", "-1", "many"} {
		if _, err := parseFlags([]string{"-max_watchers", v}, env(), io.Discard); err == nil {
			t.Errorf("-max_watchers %s accepted", v)
		}
	}
}
