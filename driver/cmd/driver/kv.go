package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	fs      *flag.FlagSet
	addr    *string
	timeout *time.Duration
	token   *string
	cacert  *string
	json    *bool
	tls     **tls.Config // loaded from -cacert by parse
}

func newClientFlags(name, args string, stderr io.Writer) clientFlags {
	fs := flag.NewFlagSet("driver "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: driver %s %s\n\nflags:\n", name, args)
		fs.PrintDefaults()
	}
	def := os.Getenv("ZKV_ADDR")
	if def == "" {
		def = "127.0.0.1:5000"
	}
	return clientFlags{
		fs:      fs,
		addr:    fs.String("addr", def, "server address host:port (default $ZKV_ADDR)"),
		timeout: fs.Duration("timeout", 10*time.Second, "request timeout"),
		token:   fs.String("token", os.Getenv("ZKV_CLUSTER_TOKEN"), "bearer token, if the server wants one"),
		cacert:  fs.String("cacert", os.Getenv("ZKV_CACERT"), "PEM CA file the server's certificate is verified against; set, the client speaks https (default $ZKV_CACERT)"),
		json:    jsonFlag(fs),
		tls:     new(*tls.Config),
	}
}

// jsonFlag adds -json, which every subcommand takes: its output as JSON for programs, one
// document on one line. (get, put, delete and status print indented JSON without it too.)
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "machine-readable output: one JSON document on one line")
}

// parse parses args and checks the positional count; ok false carries the exit code.
func (f clientFlags) parse(args []string, want int) (rest []string, code int, ok bool) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	if *f.cacert != "" {
		pool, err := client.CAPool(*f.cacert)
		if err != nil {
			fmt.Fprintf(f.fs.Output(), "-cacert: %v\n", err)
			return nil, 2, false
		}
		*f.tls = &tls.Config{RootCAs: pool}
	}
	if f.fs.NArg() != want {
		fmt.Fprintf(f.fs.Output(), "want %d argument(s), got %d\n", want, f.fs.NArg())
		f.fs.Usage()
		return nil, 2, false
	}
	return f.fs.Args(), 0, true
}

func (f clientFlags) client() *client.Client { return f.clientOf(*f.addr) }

// clientOf is a client of addr with the command's timeout, token and TLS.
func (f clientFlags) clientOf(addr string) *client.Client {
	opts := []client.Option{client.WithTimeout(*f.timeout), client.WithToken(*f.token)}
	if *f.tls != nil {
		opts = append(opts, client.WithTLS(*f.tls))
	}
	return client.New(addr, opts...)
}

// Exit codes of the client commands.
const (
	exitOK       = 0
	exitFailed   = 1 // the request failed (error as JSON on stderr)
	exitUsage    = 2
	exitNotFound = 3 // get: the server has no such key (its answer is still printed)
)

// answer prints v as JSON on stdout, or err as JSON on stderr (one line each with -json);
// it returns the exit code.
func (f clientFlags) answer(stdout, stderr io.Writer, v any, err error) int {
	return answerAs(stdout, stderr, v, err, *f.json)
}

func marshal(v any, compact bool) []byte {
	if compact {
		b, _ := json.Marshal(v)
		return b
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return b
}

func answerAs(stdout, stderr io.Writer, v any, err error, compact bool) int {
	if err != nil {
		out := map[string]any{"error": map[string]any{"message": err.Error()}}
		var ae *client.APIError
		if errors.As(err, &ae) {
			e := map[string]any{"status": ae.StatusCode, "code": ae.Code, "message": ae.Message}
			if ae.RetryAfter > 0 {
				e["retry_after"] = ae.RetryAfter.String()
			}
			out["error"] = e
		}
		fmt.Fprintln(stderr, string(marshal(out, compact)))
		return exitFailed
	}
	fmt.Fprintln(stdout, string(marshal(v, compact)))
	return exitOK
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("get", "-addr h:p [-leader] key\n\nExit status: 0 found, 3 no such key (the answer is printed all the same), 1 the request\nfailed, 2 usage", stderr)
	leader := f.fs.Bool("leader", false, "read at the leader (?consistency=leader) instead of this server's copy")
	rest, code, ok := f.parse(args, 1)
	if !ok {
		return code
	}
	var opts []client.ReadOption
	if *leader {
		opts = append(opts, client.Leader())
	}
	kv, err := f.client().Get(ctx, rest[0], opts...)
	code = f.answer(stdout, stderr, kv, err)
	if code == exitOK && !kv.Found {
		return exitNotFound
	}
	return code
}

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("put", "-addr h:p key value", stderr)
	rest, code, ok := f.parse(args, 2)
	if !ok {
		return code
	}
	kv, err := f.client().Put(ctx, rest[0], rest[1])
	return f.answer(stdout, stderr, kv, err)
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("delete", "-addr h:p key", stderr)
	rest, code, ok := f.parse(args, 1)
	if !ok {
		return code
	}
	found, err := f.client().Delete(ctx, rest[0])
	return f.answer(stdout, stderr, map[string]any{"key": rest[0], "found": found}, err)
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("status", "-addr h:p [-cluster]", stderr)
	all := f.fs.Bool("cluster", false, "one table of every member: each one's own /v1/status")
	if _, code, ok := f.parse(args, 0); !ok {
		return code
	}
	if *all {
		return clusterStatus(ctx, f, stdout, stderr)
	}
	st, err := f.client().Status(ctx)
	return f.answer(stdout, stderr, st, err)
}
