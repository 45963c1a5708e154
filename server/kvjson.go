package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"
)

// The answers of GET and PUT /v1/kv/{key}, the hot path, are encoded here rather than by
// encoding/json through echo (reflection, an Encoder per answer): the same bytes, checked
// by FuzzAppendKVJSON, at a fraction of the cost. ?pretty (echo's indented form) still
// goes through echo.

// appendKVJSON appends kv as json.Encoder (HTML escaping on, the echo default) writes it:
// the object and a newline.
func appendKVJSON(dst []byte, kv KV) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendJSONString(dst, kv.Key)
	dst = append(dst, `,"value":`...)
	dst = appendJSONString(dst, kv.Value)
	if kv.Found != nil {
		if *kv.Found {
			dst = append(dst, `,"found":true`...)
		} else {
			dst = append(dst, `,"found":false`...)
		}
	}
	if kv.Version != 0 {
		dst = append(dst, `,"version":`...)
		dst = strconv.AppendUint(dst, kv.Version, 10)
	}
	if kv.Epoch != 0 {
		dst = append(dst, `,"epoch":`...)
		dst = strconv.AppendInt(dst, kv.Epoch, 10)
	}
	if kv.Leader != "" {
		dst = append(dst, `,"leader":`...)
		dst = appendJSONString(dst, kv.Leader)
	}
	return append(dst, "}\n"...)
}

// appendJSONString appends s quoted as encoding/json quotes it. Printable ASCII other
// than '"', '\\' and the HTML-escaped '<', '>', '&' is copied; a string with anything else
// (control bytes, non-ASCII: invalid UTF-8 and U+2028/U+2029 have their own rules) is
// left to encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

var kvBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeKV answers 200 with kv, as c.JSON would.
func writeKV(c echo.Context, kv KV) error {
	if c.QueryParams().Has("pretty") {
		return c.JSON(http.StatusOK, kv)
	}
	bp := kvBufs.Get().(*[]byte)
	b := appendKVJSON((*bp)[:0], kv)
	err := c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
	if cap(b) <= 64<<10 { // a large value's buffer is not kept
		*bp = b
		kvBufs.Put(bp)
	}
	return err
}
