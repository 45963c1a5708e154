// Command driver runs the assignment's scenarios against a zkv cluster it starts, and is a
// small client of one zkv server; "driver bench" runs the benchmarks' own binary, bin/bench.
// "driver -h" lists the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand; adding one is adding a row to commands.
type command struct {
	name    string
	args    string // usage after the name
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = []command{
	{"scenarios", "[flags]", "start ZooKeeper and servers, run the three scenarios, exit 0 only if every check held", runScenarios},
	{"get", "-addr h:p [-leader] key", "read a key from one server (its own copy, or the leader's with -leader)", runGet},
	{"put", "-addr h:p key value", "write a key through one server", runPut},
	{"delete", "-addr h:p key", "delete a key through one server", runDelete},
	{"status", "-addr h:p [-cluster]", "one server's view of the cluster; -cluster: a table of every member", runStatus},
	{"snapshot", "save|restore [-addr h:p] FILE", "back the store up to FILE (from the leader), or write FILE's keys back through the leader", runSnapshot},
	{"list", "-addr h:p PREFIX [-limit N] [-after K] [-keys] [-all]", "the keys under a prefix, in order, from one server's copy (JSON; -all follows the pages)", runList},
	{"watch", "-addr h:p KEY | -prefix P [-count N]", "print each change of a key, or of the keys under a prefix (key, value, index), one JSON line each, until interrupted or N changes", runWatch},
	{"measure", "watch|list [flags]", "start a local cluster and measure watch latency (write acknowledged to watcher woken) or listing throughput", runMeasure},
	{"bench", "election|load [flags]", "benchmarks, run by bin/bench: leader-election latency (local and remote ZooKeeper), load beside etcd and Redis", runBench},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: driver <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n  %-10s   %s\n", c.name, c.args, "", c.summary)
	}
	fmt.Fprintf(w, "\n\"driver <command> -h\" lists a command's flags; every command takes -json for machine-readable output.\n")
	fmt.Fprintf(w, "Exit status: 0 ok, 1 failed, 2 usage, 3 get: no such key.\n")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs the driver with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "driver: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
