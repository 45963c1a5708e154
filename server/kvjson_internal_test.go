package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// encodeKVStd is what echo's c.JSON writes for kv: json.Encoder, HTML escaping on.
func encodeKVStd(t testing.TB, kv KV) []byte {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(kv); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzAppendKVJSON checks the hot path's encoder against encoding/json byte for byte.
func FuzzAppendKVJSON(f *testing.F) {
	for _, s := range []string{"k", "", "a b", `a"b`, `a\b`, "<&>", "é", "\xff", "\u2028", "a\tb", "\x00", "\x7f"} {
		f.Add(s, s+"v", uint64(1), int64(2), "127.0.0.1:8080", uint8(0))
	}
	f.Fuzz(func(t *testing.T, key, value string, version uint64, epoch int64, leader string, found uint8) {
		kv := KV{Key: key, Value: value, Version: version, Epoch: epoch, Leader: leader}
		switch found % 3 {
		case 1:
			kv.Found = ptr(true)
		case 2:
			kv.Found = ptr(false)
		}
		if got, want := appendKVJSON(nil, kv), encodeKVStd(t, kv); !bytes.Equal(got, want) {
			t.Fatalf("appendKVJSON(%+v) = %q, encoding/json %q", kv, got, want)
		}
	})
}

func TestAppendKVJSON(t *testing.T) {
	for _, kv := range []KV{
		{Key: "k", Found: ptr(false)},
		{Key: "k", Value: "v", Found: ptr(true), Version: 3},
		{Key: "a/b c", Value: `{"x":"<y>&"}`, Version: 18446744073709551615, Epoch: -1, Leader: "127.0.0.1:1"},
		{Key: "é\u2028", Value: "\xff\x00\x1f\x7f"},
	} {
		if got, want := appendKVJSON(nil, kv), encodeKVStd(t, kv); !bytes.Equal(got, want) {
			t.Errorf("appendKVJSON(%+v) = %q, encoding/json %q", kv, got, want)
		}
	}
}

// writeKV answers as c.JSON does: status, content type and body; ?pretty indents through echo.
func TestWriteKVAsEchoJSON(t *testing.T) {
	e := echo.New()
	kv := KV{Key: "k", Value: "<v>", Found: ptr(true), Version: 7}
	for _, target := range []string{"/v1/kv/k", "/v1/kv/k?pretty"} {
		answer := func(f func(echo.Context) error) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			if err := f(e.NewContext(httptest.NewRequest(http.MethodGet, target, nil), rec)); err != nil {
				t.Fatal(err)
			}
			return rec
		}
		got := answer(func(c echo.Context) error { return writeKV(c, kv) })
		want := answer(func(c echo.Context) error { return c.JSON(http.StatusOK, kv) })
		if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") || got.Body.String() != want.Body.String() {
			t.Errorf("%s: writeKV answered %d %q %q; c.JSON %d %q %q", target, got.Code, got.Header().Get("Content-Type"), got.Body,
				want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}
