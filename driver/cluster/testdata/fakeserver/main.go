// Command fakeserver stands in for bin/server in the cluster package's tests: it takes the
// server's flags, serves /healthz and /v1/status, and elects as leader the live fake with the
// lowest port among those registered in $FAKE_DIR (one file per port holding the pid).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	host := flag.String("host", "", "")
	port := flag.Int("port", 0, "")
	zk := flag.String("zookeeper", "", "")
	zkPort := flag.Int("zookeeper_port", 0, "")
	failStart := flag.Bool("fail_start", false, "exit 3 at once")
	ignoreTerm := flag.Bool("ignore_term", false, "ignore SIGTERM")
	ack := flag.String("ack", "", "as the server's")
	flag.Parse()
	fmt.Printf("fakeserver pid %d host %s port %d zookeeper %s zookeeper_port %d ack %q\n",
		os.Getpid(), *host, *port, *zk, *zkPort, *ack)
	if *failStart {
		fmt.Fprintln(os.Stderr, "fakeserver: failing as asked")
		os.Exit(3)
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		go func() {
			<-ch
			fmt.Println("fakeserver: SIGTERM, bye")
			os.Exit(0)
		}()
	}
	dir := os.Getenv("FAKE_DIR")
	self := net.JoinHostPort(*host, strconv.Itoa(*port))
	if dir != "" {
		_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(*port)), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	l, err := net.Listen("tcp", self)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeserver:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, r *http.Request) {
		leader := leaderOf(dir, *host)
		role := "follower"
		if leader == self {
			role = "leader"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": self, "address": self, "role": role,
			"leader": map[string]string{"id": leader, "address": leader},
		})
	})
	_ = http.Serve(l, mux)
}

// leaderOf returns the address of the live registered fake with the lowest port.
func leaderOf(dir, host string) string {
	ents, _ := os.ReadDir(dir)
	var ports []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) {
			ports = append(ports, p)
		}
	}
	if len(ports) == 0 {
		return ""
	}
	sort.Ints(ports)
	return net.JoinHostPort(host, strconv.Itoa(ports[0]))
}

// zombie reports whether pid exited but is not reaped yet.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}
