package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/server"
)

// A single server leading an in-memory election takes a write and serves it back. A real
// deployment uses server.Open, which wires the ZooKeeper election instead.
func ExampleNew() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	elector := newFakeCluster().elector("s1", ln.Addr().String()) // any server.Elector
	srv, err := server.New(server.Config{ID: "s1", Listener: ln, Ack: "all"}, server.Deps{Elector: elector})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	base := "http://" + srv.Address()
	// Wait until the server leads (it joins the election in the background).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); <-tick.C {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && elector.View().IsLeader {
				break
			}
		}
	}

	req, _ := http.NewRequest(http.MethodPut, base+"/v1/kv/greeting", strings.NewReader(`{"value":"hello"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("PUT", resp.StatusCode)

	resp, err = http.Get(base + "/read?key=greeting")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	fmt.Println(strings.TrimSpace(string(body)))
	// Output:
	// PUT 200
	// {"key":"greeting","value":"hello"}
}
