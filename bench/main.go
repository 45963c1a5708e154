package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

const usage = `usage: bench <command> [flags]

commands:
  election   leader failover latency (SIGTERM, SIGKILL) with local, simulated remote or named ZooKeeper
  load       closed-loop throughput and latency of zkv beside etcd, Redis and a bare HTTP server

"bench <command> -h" lists a command's flags.
`

// Main runs the bench command with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "election":
		return mainElection(ctx, args[1:], stdout, stderr)
	case "load":
		return mainLoad(ctx, args[1:], stdout, stderr)
	case "ceiling-serve": // internal: the ceiling server's own process
		return serveCeiling(ctx, args[1:], os.Stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "bench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func mainElection(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseElection(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return flagExit(err)
	}
	start := time.Now()
	cells, zkInfo, runErr := runElectionReport(ctx, o, stdout, stderr)
	if len(cells) == 0 && runErr != nil {
		fmt.Fprintln(stderr, "bench election:", runErr)
		return 1
	}
	var plots []string
	reportDir := filepath.Dir(o.Report)
	if o.Report != "" {
		plots, err = electionPlots(o, cells, reportDir)
		if err != nil {
			fmt.Fprintln(stderr, "bench election:", err)
		}
	}
	md := electionMarkdown(o, cells, zkInfo, start, time.Since(start), plots)
	if o.Report != "" {
		if err := writeFile(o.Report, md); err != nil {
			fmt.Fprintln(stderr, "bench election:", err)
			return 1
		}
		fmt.Fprintf(stderr, "wrote %s\n", o.Report)
	} else {
		fmt.Fprint(stdout, md)
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "bench election: stopped early:", runErr)
		return 1
	}
	return 0
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
