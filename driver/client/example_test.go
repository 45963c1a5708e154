package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/zkv-dev/zkv/driver/client"
)

// Write through any server, read back, and tell a missing leader from other errors.
func ExampleClient() {
	// A stand-in for one zkv server; in real use pass the server's "host:port".
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Zkv-Leader", "127.0.0.1:5001")
		w.Header().Set("X-Zkv-Epoch", "12")
		switch r.Method {
		case http.MethodPut:
			_ = json.NewEncoder(w).Encode(map[string]any{"key": "users/ada", "value": "lovelace", "version": 1, "epoch": 12, "leader": "127.0.0.1:5001"})
		case http.MethodDelete:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"no_leader","message":"election in progress"}}`))
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"key": "users/ada", "value": "lovelace", "found": true, "version": 1})
		}
	}))
	defer srv.Close()

	c := client.New(strings.TrimPrefix(srv.URL, "http://"))
	defer func() { _ = c.Close() }()
	ctx := context.Background()

	kv, err := c.Put(ctx, "users/ada", "lovelace")
	fmt.Println(kv.Key, kv.Value, "version", kv.Version, "by leader", kv.Leader, err)

	kv, err = c.Get(ctx, "users/ada") // this server's copy, possibly stale
	fmt.Println(kv.Value, kv.Found, "epoch", kv.Epoch, err)

	_, err = c.Delete(ctx, "users/ada")
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Temporary() {
		fmt.Println("retry in", ae.RetryAfter, "-", ae.Code)
	}
	// Output:
	// users/ada lovelace version 1 by leader 127.0.0.1:5001 <nil>
	// lovelace true epoch 12 <nil>
	// retry in 1s - no_leader
}

// Keys may contain '/': each segment is escaped on its own.
func ExampleKeyPath() {
	p, _ := client.KeyPath("photos/2024/summer holiday.jpg")
	fmt.Println(p)
	// Output: /v1/kv/photos/2024/summer%20holiday.jpg
}
