package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// SnapshotFormat is the format a snapshot's header line names (GET /v1/snapshot).
const SnapshotFormat = "zkv-snapshot/1"

// MaxSnapshotLine caps one line of a snapshot: a key and a value JSON-escaped, far above
// the servers' default limits (1 KiB keys, 1 MiB values).
const MaxSnapshotLine = 64 << 20

// ErrBadSnapshot is the error of a snapshot that is not one: malformed, truncated, or
// with keys out of order; check it with errors.Is.
var ErrBadSnapshot = errors.New("client: malformed snapshot")

// SnapshotHeader is a snapshot's first line: the position in the history it reflects and
// how many key lines follow.
type SnapshotHeader struct {
	Format  string `json:"format"`
	Index   uint64 `json:"index"`
	Epoch   int64  `json:"epoch"`
	Keys    int    `json:"keys"`
	Server  string `json:"server"`
	TakenAt string `json:"taken_at"`
}

// SnapshotKey is one key of a snapshot.
type SnapshotKey struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
}

// Snapshot streams the server's GET /v1/snapshot: it checks each line as ReadSnapshot does
// and copies the raw stream to w, so w holds a file that ReadSnapshot takes. onKey, when
// not nil, is called after each key (e.g. for progress). The client's timeout does not
// apply: a large store takes long; ctx bounds it.
func (c *Client) Snapshot(ctx context.Context, w io.Writer, onKey func(done int, h SnapshotHeader)) (SnapshotHeader, error) {
	u := c.base + "/v1/snapshot"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return SnapshotHeader{}, fmt.Errorf("client: GET %s: %w", u, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return SnapshotHeader{}, fmt.Errorf("client: GET %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return SnapshotHeader{}, apiError(resp, b)
	}
	var h SnapshotHeader
	done := 0
	h, err = ReadSnapshot(io.TeeReader(resp.Body, w), func(hd SnapshotHeader, _ SnapshotKey) error {
		done++
		if onKey != nil {
			onKey(done, hd)
		}
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("client: GET %s: %w", u, err)
	}
	return h, nil
}

// ReadSnapshot reads a snapshot (GET /v1/snapshot's answer, or a file saved from it) and
// calls fn for every key in order. It fails with ErrBadSnapshot, naming the line, on
// anything but a header of SnapshotFormat followed by exactly header.Keys well-formed key
// lines with non-empty UTF-8 keys in strictly increasing order; an error of fn stops it
// and is returned as is. Keys already passed to fn before a later line proves the
// snapshot bad are not taken back: read it once with a no-op fn to check it first.
func ReadSnapshot(r io.Reader, fn func(SnapshotHeader, SnapshotKey) error) (SnapshotHeader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	line := 0
	next := func() ([]byte, error) {
		var buf []byte
		for {
			part, err := br.ReadSlice('\n')
			buf = append(buf, part...)
			if len(buf) > MaxSnapshotLine {
				return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrBadSnapshot, line+1, MaxSnapshotLine)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil && len(buf) == 0 {
				return nil, err
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			line++
			return bytes.TrimRight(buf, "\r\n"), nil
		}
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadSnapshot, line, fmt.Sprintf(format, a...))
	}
	var h SnapshotHeader
	first, err := next()
	if errors.Is(err, io.EOF) {
		return h, fmt.Errorf("%w: empty", ErrBadSnapshot)
	}
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(first, &h); err != nil { // later versions may add fields
		return h, bad("header: %v", err)
	}
	if h.Format != SnapshotFormat {
		return h, bad("header: format %q, want %q", h.Format, SnapshotFormat)
	}
	if h.Keys < 0 {
		return h, bad("header: negative key count %d", h.Keys)
	}
	prev, n := "", 0
	for {
		b, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return h, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return h, bad("empty line")
		}
		var k SnapshotKey
		if err := strictJSON(b, &k); err != nil {
			return h, bad("%v", err)
		}
		switch {
		case k.Key == "":
			return h, bad("empty key")
		case !utf8.ValidString(k.Key):
			return h, bad("key is not valid UTF-8")
		case n > 0 && k.Key <= prev:
			return h, bad("key %q is not after %q: keys must be in increasing order, each once", k.Key, prev)
		}
		n++
		if n > h.Keys {
			return h, bad("more keys than the header's %d", h.Keys)
		}
		prev = k.Key
		if err := fn(h, k); err != nil {
			return h, err
		}
	}
	if n != h.Keys {
		return h, fmt.Errorf("%w: %d keys, the header says %d: truncated", ErrBadSnapshot, n, h.Keys)
	}
	return h, nil
}

// strictJSON decodes one JSON object with no unknown field and nothing after it.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}
