package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ceilingBody is the fixed answer of the ceiling server: shaped like zkv's GET answer for a
// value of n bytes, so the bytes on the wire match.
func ceilingBody(n int) []byte {
	b, _ := json.Marshal(map[string]any{"key": makeKeys(1)[0], "value": makeValue(n), "found": true, "version": 1})
	return b
}

// ceilingHandler answers every request with body after draining the request's own.
func ceilingHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// serveCeiling is the hidden `ceiling-serve` subcommand: a bare net/http server in a
// process of its own (like zkv's servers), printing its address on stdout, until ctx ends or
// stdin closes.
func serveCeiling(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	size := 100
	if len(args) > 0 {
		if _, err := fmt.Sscanf(args[0], "%d", &size); err != nil {
			fmt.Fprintln(stderr, "ceiling-serve: value size:", err)
			return 2
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "ceiling-serve:", err)
		return 1
	}
	srv := &http.Server{Handler: ceilingHandler(ceilingBody(size)), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(stdout, l.Addr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin) // the parent holds our stdin: EOF means it is gone
		cancel()
	}()
	go func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(stderr, "ceiling-serve:", err)
		return 1
	}
	return 0
}

// ceiling is a running ceiling server: a child process, or an in-process server for tests.
type ceiling struct {
	addr  string
	proc  *proc // nil in-process
	close func()
}

// startCeiling starts the ceiling server answering values of size bytes. With self empty it
// serves in-process; otherwise it runs self (this program, bin/bench) as `ceiling-serve`.
func startCeiling(ctx context.Context, self string, logDir string, size int) (*ceiling, error) {
	if self == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: ceiling: %w", err)
		}
		srv := &http.Server{Handler: ceilingHandler(ceilingBody(size)), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		return &ceiling{addr: l.Addr().String(), close: func() { _ = srv.Close() }}, nil
	}
	p, stdin, out, err := startProcPiped("ceiling", logDir, self, "ceiling-serve", fmt.Sprint(size))
	if err != nil {
		return nil, err
	}
	addrCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addrCh <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-addrCh:
		if addr == "" {
			p.stop(time.Second)
			return nil, fmt.Errorf("bench: ceiling server printed no address (see %s)", p.log.Name())
		}
		return &ceiling{addr: addr, proc: p, close: func() { stdin.Close(); p.stop(2 * time.Second) }}, nil
	case <-time.After(10 * time.Second):
		p.stop(time.Second)
		return nil, fmt.Errorf("bench: ceiling server did not start (see %s)", p.log.Name())
	case <-ctx.Done():
		p.stop(time.Second)
		return nil, ctx.Err()
	}
}
