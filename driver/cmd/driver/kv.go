package main

import (
	"context"
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
	}
}

// parse parses args and checks the positional count; ok false carries the exit code.
func (f clientFlags) parse(args []string, want int) (rest []string, code int, ok bool) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	if f.fs.NArg() != want {
		fmt.Fprintf(f.fs.Output(), "want %d argument(s), got %d\n", want, f.fs.NArg())
		f.fs.Usage()
		return nil, 2, false
	}
	return f.fs.Args(), 0, true
}

func (f clientFlags) client() *client.Client {
	return client.New(*f.addr, client.WithTimeout(*f.timeout), client.WithToken(*f.token))
}

// answer prints v as JSON on stdout, or err as JSON on stderr; it returns the exit code.
func answer(stdout, stderr io.Writer, v any, err error) int {
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
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stderr, string(b))
		return 1
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("get", "-addr h:p [-leader] key", stderr)
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
	return answer(stdout, stderr, kv, err)
}

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("put", "-addr h:p key value", stderr)
	rest, code, ok := f.parse(args, 2)
	if !ok {
		return code
	}
	kv, err := f.client().Put(ctx, rest[0], rest[1])
	return answer(stdout, stderr, kv, err)
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("delete", "-addr h:p key", stderr)
	rest, code, ok := f.parse(args, 1)
	if !ok {
		return code
	}
	found, err := f.client().Delete(ctx, rest[0])
	return answer(stdout, stderr, map[string]any{"key": rest[0], "found": found}, err)
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("status", "-addr h:p", stderr)
	if _, code, ok := f.parse(args, 0); !ok {
		return code
	}
	st, err := f.client().Status(ctx)
	return answer(stdout, stderr, st, err)
}
