package robustness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// kvAnswer is the JSON of the /v1/kv routes (and their error bodies).
type kvAnswer struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Found   bool   `json:"found"`
	Version uint64 `json:"version"`
	Epoch   int64  `json:"epoch"`
	Leader  string `json:"leader"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Client sends operations to the cluster and records them in a History.
type Client struct {
	ID      int
	history *History
	http    *http.Client
}

// NewClient makes client id with a per-request timeout.
func NewClient(id int, h *History, timeout time.Duration) *Client {
	return &Client{ID: id, history: h, http: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Put writes key=value through srv and records the operation.
func (c *Client) Put(ctx context.Context, srv *Server, key, value string) Op {
	body, _ := json.Marshal(map[string]string{"value": value})
	op := Op{Client: c.ID, Kind: Put, Key: key, Value: value}
	c.do(ctx, srv, &op, http.MethodPut, "/v1/kv/"+url.PathEscape(key), body)
	return op
}

// Get reads key from srv: its own copy, or the leader's when leader is true.
func (c *Client) Get(ctx context.Context, srv *Server, key string, leader bool) Op {
	op := Op{Client: c.ID, Kind: LocalGet, Key: key}
	path := "/v1/kv/" + url.PathEscape(key)
	if leader {
		op.Kind = LeaderGet
		path += "?consistency=leader"
	}
	c.do(ctx, srv, &op, http.MethodGet, path, nil)
	return op
}

func (c *Client) do(ctx context.Context, srv *Server, op *Op, method, path string, body []byte) {
	op.Server, op.Gen = srv.Index, srv.Gen()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+srv.ClientAddr+path, rd)
	if err != nil {
		panic(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	op.Call = c.history.Now()
	resp, err := c.http.Do(req)
	var a kvAnswer
	if err == nil {
		op.Status = resp.StatusCode
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil {
			err = rerr
		} else if jerr := json.Unmarshal(raw, &a); jerr != nil && resp.StatusCode == http.StatusOK {
			err = fmt.Errorf("bad answer %q: %w", raw, jerr)
		}
		if a.Epoch == 0 {
			a.Epoch, _ = strconv.ParseInt(resp.Header.Get("X-Zkv-Epoch"), 10, 64)
		}
		if a.Leader == "" {
			a.Leader = resp.Header.Get("X-Zkv-Leader")
		}
	}
	op.Return = c.history.Now()
	if srv.Gen() != op.Gen {
		op.Gen = -1 // straddled a restart: which process answered is unknown
	}
	switch {
	case err != nil:
		op.Err = err.Error()
		op.Outcome = Unknown
		if errors.Is(err, syscall.ECONNREFUSED) {
			op.Outcome = Failed
		}
	case op.Status == http.StatusOK:
		op.Outcome = OK
		op.Found, op.Version, op.Epoch, op.Leader = a.Found, a.Version, a.Epoch, a.Leader
		if op.Kind != Put {
			op.Value = a.Value
		} else {
			op.Found = true
		}
	case op.Status >= 400 && op.Status < 500:
		op.Outcome = Failed
	default:
		op.Outcome = Unknown // 5xx (503 included): the leader may have applied it before failing
	}
	if a.Error != nil {
		op.Err = a.Error.Code
	}
	if op.Kind != Put && op.Outcome == Unknown {
		op.Outcome = Failed // a failed read changes nothing
	}
	c.history.Add(*op)
}
