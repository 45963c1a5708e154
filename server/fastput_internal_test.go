package server

import "testing"

// FuzzFastPutValue checks the PUT body's fast path against encoding/json: whatever it
// takes, decodeStrict takes too, with the same value.
func FuzzFastPutValue(f *testing.F) {
	for _, s := range []string{`{"value":"v"}`, ` { "value" : "a b" } `, `{"value":"\u00e9"}`, `{"value":"é"}`,
		`{"value":"a\"b"}`, `{"Value":"v"}`, `{"value":"v","value":"w"}`, `{"value":"v"}{}`, "{\"value\":\"\xff\"}",
		`{"value":""}`, "{\"value\":\"a\tb\"}", `{"value":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := fastPutValue(data)
		if !ok {
			return
		}
		var body putBody
		if err := decodeStrict(data, &body); err != nil {
			t.Fatalf("fast path took %q as %q; decodeStrict refuses it: %v", data, v, err)
		}
		if body.Value == nil || *body.Value != v {
			t.Fatalf("fast path took %q as %q; decodeStrict as %v", data, v, body.Value)
		}
	})
}

func TestFastPutValue(t *testing.T) {
	for in, want := range map[string]string{`{"value":"v"}`: "v", " {\n\"value\" :\t\"a b\" }\r\n": "a b", `{"value":"é"}`: "é", `{"value":""}`: ""} {
		if got, ok := fastPutValue([]byte(in)); !ok || got != want {
			t.Errorf("fastPutValue(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{`{"value":"a\"b"}`, `{"value":"\u00e9"}`, `{"Value":"v"}`, `{"value":"v","value":"w"}`,
		`{"value":"v"}{}`, "{\"value\":\"\xff\"}", "{\"value\":\"a\tb\"}", `{"value":1}`, `{"value":"v"`, `{"value":"v}`, ``} {
		if got, ok := fastPutValue([]byte(in)); ok {
			t.Errorf("fastPutValue(%q) = %q, true; want the slow path", in, got)
		}
	}
}
