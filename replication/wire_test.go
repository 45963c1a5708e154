package replication

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/kvstore"
)

func TestDecodeAppend(t *testing.T) {
	good := `{"epoch":3,"leader":"127.0.0.1:1","prev_index":4,"prev_epoch":2,"entries":[` +
		`{"key":"a","value":"1","version":1,"index":5,"epoch":3},{"key":"a","version":2,"index":6,"epoch":3,"deleted":true}]}`
	req, err := DecodeAppend(strings.NewReader(good+"\n \t"), 0)
	if err != nil {
		t.Fatalf("good body: %v", err)
	}
	want := AppendRequest{Epoch: 3, Leader: "127.0.0.1:1", PrevIndex: 4, PrevEpoch: 2, Entries: []kvstore.Entry{
		{Key: "a", Value: "1", Version: 1, Index: 5, Epoch: 3},
		{Key: "a", Version: 2, Index: 6, Epoch: 3, Deleted: true},
	}}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("decoded %+v, want %+v", req, want)
	}
	bad := map[string]struct {
		body string
		want error
	}{
		"empty":         {``, ErrMalformed},
		"not json":      {`epoch=1`, ErrMalformed},
		"array":         {`[]`, ErrMalformed},
		"unknown field": {`{"epoch":1,"extra":true}`, ErrMalformed},
		"unknown entry": {`{"epoch":1,"entries":[{"key":"a","index":1,"ttl":3}]}`, ErrMalformed},
		"trailing":      {`{"epoch":1} {}`, ErrMalformed},
		"trailing junk": {`{"epoch":1}x`, ErrMalformed},
		"wrong type":    {`{"epoch":"1"}`, ErrMalformed},
		"negative":      {`{"epoch":-1}`, ErrInvalidRequest},
		"prev above":    {`{"epoch":1,"prev_epoch":2}`, ErrInvalidRequest},
		"gap":           {`{"epoch":1,"prev_index":1,"entries":[{"key":"a","index":3,"epoch":1}]}`, ErrInvalidRequest},
		"empty key":     {`{"epoch":1,"entries":[{"key":"","index":1,"epoch":1}]}`, ErrInvalidRequest},
		"future epoch":  {`{"epoch":1,"entries":[{"key":"a","index":1,"epoch":2}]}`, ErrInvalidRequest},
		"too large":     {good, ErrTooLarge},
	}
	for name, c := range bad {
		limit := int64(0)
		if name == "too large" {
			limit = int64(len(good) - 1)
		}
		_, err := DecodeAppend(strings.NewReader(c.body), limit)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	// Exactly at the limit is fine.
	if _, err := DecodeAppend(strings.NewReader(good), int64(len(good))); err != nil {
		t.Errorf("body at the limit: %v", err)
	}
	// A body cut by http.MaxBytesReader counts as too large as well.
	mbr := http.MaxBytesReader(nil, ioNopCloser{strings.NewReader(good)}, 10)
	if _, err := DecodeAppend(mbr, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxBytesReader: err = %v, want ErrTooLarge", err)
	}
}

type ioNopCloser struct{ *strings.Reader }

func (ioNopCloser) Close() error { return nil }

func TestDecodeSnapshot(t *testing.T) {
	body := `{"epoch":2,"leader":"l","snapshot":{"index":3,"epoch":2,"entries":[{"key":"a","value":"v","version":1,"index":3,"epoch":2}]}}`
	req, err := DecodeSnapshot(strings.NewReader(body), 0)
	if err != nil || req.Snapshot.Index != 3 || len(req.Snapshot.Entries) != 1 {
		t.Fatalf("DecodeSnapshot = %+v, %v", req, err)
	}
	for _, b := range []string{
		`{"epoch":2,"snapshot":{"index":2,"epoch":2,"entries":[{"key":"a","index":3}]}}`,
		`{"epoch":1,"snapshot":{"index":2,"epoch":2}}`,
		`{"epoch":2,"snapshot":{"index":2,"entries":[{"key":"","index":1}]}}`,
	} {
		if _, err := DecodeSnapshot(strings.NewReader(b), 0); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", b, err)
		}
	}
	if _, err := DecodeSnapshot(strings.NewReader(body), 20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit: err = %v", err)
	}
}

func TestErrorStatus(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{&StaleEpochError{Epoch: 9, Got: 3}, 412, CodeStaleEpoch},
		{&LogMismatchError{LastIndex: 7, LastEpoch: 2}, 409, CodeLogMismatch},
		{ErrNotLeader, 403, CodeNotLeader},
		{ErrTooLarge, 413, CodeTooLarge},
		{ErrMalformed, 400, CodeBadRequest},
		{ErrInvalidRequest, 400, CodeBadRequest},
		{errors.New("disk on fire"), 500, CodeInternal},
	}
	for _, c := range cases {
		status, body := ErrorStatus(c.err)
		if status != c.status || body.Error.Code != c.code || body.Error.Message == "" {
			t.Errorf("%v: got %d %+v", c.err, status, body)
		}
	}
	_, body := ErrorStatus(&LogMismatchError{LastIndex: 7, LastEpoch: 2})
	raw, _ := json.Marshal(body)
	if !bytes.Contains(raw, []byte(`"last_index":7`)) || !bytes.Contains(raw, []byte(`"code":"log_mismatch"`)) {
		t.Errorf("body %s", raw)
	}
	_, body = ErrorStatus(&StaleEpochError{Epoch: 9})
	if body.Epoch != 9 {
		t.Errorf("stale body %+v", body)
	}
}

// FuzzDecodeAppend checks that the decoder never panics, and that whatever it accepts is
// valid and survives an encode/decode round trip unchanged.
func FuzzDecodeAppend(f *testing.F) {
	f.Add([]byte(`{"epoch":1,"leader":"a:1","prev_index":0,"prev_epoch":0,"entries":[{"key":"k","value":"v","version":1,"index":1,"epoch":1}]}`))
	f.Add([]byte(`{"epoch":1,"entries":[]}`))
	f.Add([]byte(`{"epoch":1}{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeAppend(bytes.NewReader(data), 1<<16)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidRequest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeAppend(bytes.NewReader(raw), 0)
		if err != nil {
			t.Fatalf("re-decode %s: %v", raw, err)
		}
		if len(again.Entries) == 0 && len(req.Entries) == 0 {
			again.Entries, req.Entries = nil, nil
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed %+v into %+v", req, again)
		}
	})
}
