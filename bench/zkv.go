package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// zkvHTTP is the load benchmark's client of zkv's REST API: plain net/http with a connection
// pool as large as the client count, the same kind of loop as the ceiling's.
type zkvHTTP struct {
	addrs []string // worker w talks to addrs[w%len]
	hc    *http.Client
}

func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

func newZkvHTTP(addrs []string, conns int) *zkvHTTP {
	return &zkvHTTP{addrs: addrs, hc: newHTTPClient(conns, 10*time.Second)}
}

func (z *zkvHTTP) Close() { z.hc.CloseIdleConnections() }

func kvURL(addr, key string) string { return "http://" + addr + "/v1/kv/" + url.PathEscape(key) }

// do sends one request and drains the answer, which must be 200.
func do(ctx context.Context, hc *http.Client, method, u string, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("bench: %s %s: %d %s", method, u, resp.StatusCode, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func putBody(value string) []byte {
	b, _ := json.Marshal(map[string]string{"value": value})
	return b
}

func (z *zkvHTTP) put(keys []string, value string) Op {
	body := putBody(value)
	return func(ctx context.Context, w int, seq uint64) error {
		return do(ctx, z.hc, http.MethodPut, kvURL(z.addrs[w%len(z.addrs)], pickKey(keys, w, seq)), body)
	}
}

func (z *zkvHTTP) putKey(ctx context.Context, w int, key, value string) error {
	return do(ctx, z.hc, http.MethodPut, kvURL(z.addrs[w%len(z.addrs)], key), putBody(value))
}

func (z *zkvHTTP) get(keys []string, leader bool) Op {
	q := ""
	if leader {
		q = "?consistency=leader"
	}
	return func(ctx context.Context, w int, seq uint64) error {
		return do(ctx, z.hc, http.MethodGet, kvURL(z.addrs[w%len(z.addrs)], pickKey(keys, w, seq))+q, nil)
	}
}

// getURL is the ceiling's op: GET of a fixed URL.
func getURL(hc *http.Client, addr string, keys []string) Op {
	return func(ctx context.Context, w int, seq uint64) error {
		return do(ctx, hc, http.MethodGet, kvURL(addr, pickKey(keys, w, seq)), nil)
	}
}

// zkvStatus is the part of /v1/status the benchmarks read.
type zkvStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Role    string `json:"role"`
	Leader  struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"leader"`
	Epoch int64 `json:"epoch"`
	Keys  int   `json:"keys"`
}

func getStatus(ctx context.Context, hc *http.Client, addr string) (zkvStatus, error) {
	var st zkvStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bench: status %s: %d", addr, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// putResult is the part of a PUT answer the election benchmark reads.
type putResult struct {
	Epoch  int64  `json:"epoch"`
	Leader string `json:"leader"`
}

func putOnce(ctx context.Context, hc *http.Client, addr, key, value string) (putResult, error) {
	var pr putResult
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, kvURL(addr, key), bytes.NewReader(putBody(value)))
	if err != nil {
		return pr, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return pr, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return pr, fmt.Errorf("bench: put %s: %d", addr, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&pr)
	return pr, err
}

// leaderHeaders does GET /healthz and returns the X-Zkv-Leader and X-Zkv-Epoch headers: the
// server's election view, the same one /v1/status reports, without the ZooKeeper reads that
// /v1/status makes for its member list.
func leaderHeaders(ctx context.Context, hc *http.Client, addr string) (leader string, epoch int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	epoch, _ = strconv.ParseInt(resp.Header.Get("X-Zkv-Epoch"), 10, 64)
	return resp.Header.Get("X-Zkv-Leader"), epoch, nil
}
