package server

import (
	"reflect"
	"testing"
)

func TestForwardEncodingRoundTrip(t *testing.T) {
	for _, req := range []forwardRequest{
		{Method: "GET", URI: "/v1/kv/x?consistency=leader", From: "a"},
		{Method: "PUT", URI: "/v1/kv/a%2Fb", From: "f", IfMatch: []string{`"3"`, `"4"`}, IfNoneMatch: []string{"*"}, Body: []byte(`{"value":"v"}`)},
		{Method: "POST", URI: "/update", Body: []byte{}},
	} {
		enc := req.encode()
		got, err := decodeForwardRequest(enc)
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("%+v: got %+v, %v", req, got, err)
		}
		for n := range len(enc) {
			if _, err := decodeForwardRequest(enc[:n]); err == nil {
				t.Fatalf("%+v: a prefix of %d/%d bytes decoded", req, n, len(enc))
			}
		}
	}
	rep := forwardReply{Status: 409, ContentType: "application/json", Headers: [][2]string{{HeaderETag, `"7"`}}, Body: []byte(`{"error":{}}`)}
	got, err := decodeForwardReply(rep.encode())
	if err != nil || !reflect.DeepEqual(got, rep) {
		t.Errorf("reply: got %+v, %v", got, err)
	}
	if _, err := decodeForwardReply(forwardReply{Status: 7}.encode()); err == nil {
		t.Error("a status below 100 decoded")
	}
}
