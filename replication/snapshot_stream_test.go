package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/kvstore"
)

func streamEntries(n, valueBytes int) []kvstore.Entry {
	es := make([]kvstore.Entry, n)
	for i := range es {
		es[i] = kvstore.Entry{Key: fmt.Sprintf("k%06d", i), Value: strings.Repeat("\x01", valueBytes),
			Version: uint64(i%3 + 1), Index: uint64(i + 1), Epoch: 2, Deleted: i%7 == 3}
		if es[i].Deleted {
			es[i].Value = ""
		}
	}
	return es
}

func encodeStream(t testing.TB, h SnapshotHeader, es []kvstore.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteSnapshotStream(&buf, h, es); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotStreamRoundTrip(t *testing.T) {
	es := streamEntries(300, 100)
	h := SnapshotHeader{Epoch: 3, Leader: "l:1", To: "inc", Index: 300, SnapshotEpoch: 2}
	raw := encodeStream(t, h, es)
	var admitted SnapshotHeader
	req, err := ReadSnapshotStream(bytes.NewReader(raw), SnapshotLimits{}, func(h SnapshotHeader) error {
		admitted = h
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := SnapshotRequest{Epoch: 3, Leader: "l:1", To: "inc", Snapshot: kvstore.Snapshot{Index: 300, Epoch: 2, Entries: es}}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("round trip changed the request")
	}
	if admitted.Count != 300 || admitted.Leader != "l:1" {
		t.Errorf("admit saw %+v", admitted)
	}
	// An empty store is a stream too.
	req, err = ReadSnapshotStream(bytes.NewReader(encodeStream(t, SnapshotHeader{Epoch: 1}, nil)), SnapshotLimits{}, nil)
	if err != nil || len(req.Snapshot.Entries) != 0 || req.Epoch != 1 {
		t.Fatalf("empty: %+v, %v", req, err)
	}
}

// Every way a stream can be cut short or damaged is an error: nothing of it comes back.
func TestSnapshotStreamTruncatedOrCorrupt(t *testing.T) {
	raw := encodeStream(t, SnapshotHeader{Epoch: 3, Index: 50, SnapshotEpoch: 2}, streamEntries(50, 40))
	for _, n := range []int{0, 3, len(snapshotMagic), len(snapshotMagic) + 7, len(raw) / 2, len(raw) - 17, len(raw) - 1} {
		req, err := ReadSnapshotStream(bytes.NewReader(raw[:n]), SnapshotLimits{}, nil)
		if !errors.Is(err, ErrMalformed) || req.Snapshot.Entries != nil {
			t.Errorf("cut at %d of %d: %v, %d entries", n, len(raw), err, len(req.Snapshot.Entries))
		}
	}
	flip := bytes.Clone(raw)
	flip[len(raw)/2] ^= 0x40 // inside some value: only the checksum tells
	if _, err := ReadSnapshotStream(bytes.NewReader(flip), SnapshotLimits{}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("a flipped bit: %v", err)
	}
	if _, err := ReadSnapshotStream(bytes.NewReader(append(bytes.Clone(raw), 0)), SnapshotLimits{}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("data after the trailer: %v", err)
	}
	// A header that promises more entries than come: the trailer's count disagrees.
	short := encodeStream(t, SnapshotHeader{Epoch: 3, Index: 50, SnapshotEpoch: 2}, streamEntries(10, 4))
	d := NewSnapshotReader(bytes.NewReader(short), SnapshotLimits{})
	if _, err := d.Header(); err != nil {
		t.Fatal(err)
	}
	d.header.Count = 11
	for err := error(nil); err == nil; {
		_, err = d.Next()
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("count mismatch: %v", err)
		}
	}
}

func TestSnapshotStreamLimits(t *testing.T) {
	es := streamEntries(20, 1000)
	raw := encodeStream(t, SnapshotHeader{Epoch: 3, Index: 20, SnapshotEpoch: 2}, es)
	for name, lim := range map[string]SnapshotLimits{
		"value": {MaxValueBytes: 999},
		"key":   {MaxKeyBytes: 6},
		"total": {MaxBytes: 5000},
	} {
		if _, err := ReadSnapshotStream(bytes.NewReader(raw), lim, nil); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", name, err)
		}
	}
	if _, err := ReadSnapshotStream(bytes.NewReader(raw), SnapshotLimits{MaxValueBytes: 1000, MaxKeyBytes: 7}, nil); err != nil {
		t.Errorf("at the limits: %v", err)
	}
	// An entry above the snapshot's index, a header whose epochs are out of order.
	bad := encodeStream(t, SnapshotHeader{Epoch: 3, Index: 5, SnapshotEpoch: 2}, es)
	if _, err := ReadSnapshotStream(bytes.NewReader(bad), SnapshotLimits{}, nil); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("entry past the index: %v", err)
	}
	bad = encodeStream(t, SnapshotHeader{Epoch: 1, Index: 20, SnapshotEpoch: 2}, es)
	if _, err := ReadSnapshotStream(bytes.NewReader(bad), SnapshotLimits{}, nil); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("snapshot epoch above the request's: %v", err)
	}
	// admit's refusal ends the decoding before the entries.
	refuse := errors.New("not you")
	r := &countingReader{r: bytes.NewReader(raw)}
	if _, err := ReadSnapshotStream(r, SnapshotLimits{}, func(SnapshotHeader) error { return refuse }); !errors.Is(err, refuse) {
		t.Errorf("admit: %v", err)
	}
	if r.n >= int64(len(raw)) {
		t.Errorf("a refused stream was read whole (%d bytes)", r.n)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), 512)]
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// The HTTPTransport streams a snapshot; a replica that decodes it with ReadSnapshotStream
// and installs it through a Follower ends at the snapshot's position.
func TestHTTPTransportStreamsSnapshot(t *testing.T) {
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fol, err := NewFollower(FollowerConfig{Store: st, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != ContentTypeSnapshotStream {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		req, err := ReadSnapshotStream(r.Body, SnapshotLimits{}, func(h SnapshotHeader) error { return fol.Admits(h.Epoch, h.Leader) })
		if err == nil {
			var resp AppendResponse
			if resp, err = fol.InstallSnapshot(r.Context(), req); err == nil {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"last_index":%d,"last_epoch":%d}`, resp.LastIndex, resp.LastEpoch)
				return
			}
		}
		status, body := ErrorStatus(err)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, body.Error.Code, body.Error.Message)
	}))
	defer srv.Close()
	tr, err := NewHTTPTransport(HTTPTransportConfig{RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	es := streamEntries(2000, 300)
	resp, err := tr.Snapshot(context.Background(), srv.URL, SnapshotRequest{Epoch: 4, Leader: "l:1",
		Snapshot: kvstore.Snapshot{Index: 2000, Epoch: 2, Entries: es}})
	if err != nil || resp.LastIndex != 2000 || resp.LastEpoch != 2 {
		t.Fatalf("snapshot: %+v, %v", resp, err)
	}
	if got := st.Snapshot().Entries; !reflect.DeepEqual(got, es) {
		t.Fatalf("installed %d entries, not the %d sent", len(got), len(es))
	}
	// A deposed leader's stream is refused on its header.
	_, err = tr.Snapshot(context.Background(), srv.URL, SnapshotRequest{Epoch: 3, Leader: "old:1",
		Snapshot: kvstore.Snapshot{Index: 1, Epoch: 1, Entries: es[:1]}})
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale snapshot: %v", err)
	}
	if idx, _ := st.Last(); idx != 2000 {
		t.Fatalf("the refused snapshot moved the store to %d", idx)
	}
}

// FuzzDecodeSnapshotStream checks that the stream decoder never panics, that its errors
// are of the protocol's classes, and that whatever it accepts is valid and survives an
// encode/decode round trip unchanged.
func FuzzDecodeSnapshotStream(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteSnapshotStream(&buf, SnapshotHeader{Epoch: 2, Leader: "a:1", Index: 9, SnapshotEpoch: 1}, streamEntries(3, 5))
	f.Add(buf.Bytes())
	buf.Reset()
	_ = WriteSnapshotStream(&buf, SnapshotHeader{Epoch: 1}, nil)
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic + "H\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := SnapshotLimits{MaxKeyBytes: 64, MaxValueBytes: 1 << 10, MaxBytes: 1 << 16}
		req, err := ReadSnapshotStream(bytes.NewReader(data), lim, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidRequest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		var out bytes.Buffer
		h := SnapshotHeader{Epoch: req.Epoch, Leader: req.Leader, To: req.To, Index: req.Snapshot.Index, SnapshotEpoch: req.Snapshot.Epoch}
		if err := WriteSnapshotStream(&out, h, req.Snapshot.Entries); err != nil {
			t.Fatal(err)
		}
		again, err := ReadSnapshotStream(&out, lim, nil)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed %+v into %+v", req, again)
		}
	})
}
