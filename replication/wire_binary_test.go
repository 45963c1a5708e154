package replication

import (
	"errors"
	"reflect"
	"testing"

	"github.com/zkv-dev/zkv/kvstore"
)

func sampleAppends() []AppendRequest {
	return []AppendRequest{
		{Epoch: 1, Leader: "a:1"},
		{Epoch: 7, Leader: "127.0.0.1:5000", PrevIndex: 41, PrevEpoch: 6, Commit: 40, Complete: true, InSync: true, To: "c99d342f06d548a6",
			Entries: []kvstore.Entry{
				{Noop: true, Index: 42, Epoch: 7},
				{Key: "k", Value: "v", Version: 3, Index: 43, Epoch: 7},
				{Key: "gone", Version: 9, Index: 44, Epoch: 7, Deleted: true},
				{Key: "ünïcode/κλειδί", Value: string(make([]byte, 300)), Version: 1 << 40, Index: 45, Epoch: 7},
			}},
		{Epoch: 1 << 50, PrevIndex: 1<<63 - 2, PrevEpoch: 1 << 49, Entries: []kvstore.Entry{{Key: "x", Index: 1<<63 - 1, Epoch: 1 << 50}}},
	}
}

func equalAppend(a, b AppendRequest) bool {
	if len(a.Entries) == 0 && len(b.Entries) == 0 {
		a.Entries, b.Entries = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestAppendBinaryRoundTrip(t *testing.T) {
	for _, req := range sampleAppends() {
		got, err := DecodeAppendBinary(EncodeAppend(nil, req))
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		if !equalAppend(req, got) {
			t.Errorf("round trip changed %+v into %+v", req, got)
		}
		// Encoding after a prefix leaves the prefix alone.
		buf := EncodeAppend([]byte("xy"), req)
		if string(buf[:2]) != "xy" {
			t.Errorf("prefix overwritten: %q", buf[:2])
		}
	}
}

// Every strict prefix of an encoding, and the encoding with a byte more, is malformed;
// a request that breaks the protocol is invalid, as with DecodeAppend.
func TestDecodeAppendBinaryRejects(t *testing.T) {
	enc := EncodeAppend(nil, sampleAppends()[1])
	for n := range len(enc) {
		if _, err := DecodeAppendBinary(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d/%d bytes: %v, want ErrMalformed", n, len(enc), err)
		}
	}
	if _, err := DecodeAppendBinary(append(enc[:len(enc):len(enc)], 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	bad := append([]byte(nil), enc...)
	bad[0] = 99
	if _, err := DecodeAppendBinary(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown version: %v", err)
	}
	gap := AppendRequest{Epoch: 2, PrevIndex: 5, Entries: []kvstore.Entry{{Key: "k", Index: 7, Epoch: 2}}}
	if _, err := DecodeAppendBinary(EncodeAppend(nil, gap)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("index gap: %v, want ErrInvalidRequest", err)
	}
	future := AppendRequest{Epoch: 2, Entries: []kvstore.Entry{{Key: "k", Index: 1, Epoch: 3}}}
	if _, err := DecodeAppendBinary(EncodeAppend(nil, future)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("entry epoch above the request's: %v, want ErrInvalidRequest", err)
	}
	// A count of entries the payload cannot hold is refused before any allocation.
	lie := EncodeAppend(nil, AppendRequest{Epoch: 1})
	lie = append(lie[:len(lie)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := DecodeAppendBinary(lie); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge count: %v", err)
	}
}

func TestAppendResponseAndErrorRoundTrip(t *testing.T) {
	for _, resp := range []AppendResponse{{}, {LastIndex: 9, LastEpoch: 3, Applied: 8, Partial: true, Incarnation: "abc"}} {
		got, err := DecodeAppendResponse(EncodeAppendResponse(nil, resp))
		if err != nil || got != resp {
			t.Errorf("%+v: got %+v, %v", resp, got, err)
		}
	}
	if _, err := DecodeAppendResponse([]byte{2}); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad flags: %v", err)
	}
	for _, err := range []error{&StaleEpochError{Epoch: 7, Got: 3}, &LogMismatchError{LastIndex: 12, LastEpoch: 2}, ErrNewIncarnation} {
		status, body := ErrorStatus(err)
		gs, gb, derr := DecodeError(EncodeError(status, body))
		if derr != nil || gs != status || gb != body {
			t.Errorf("%v: got %d %+v %v", err, gs, gb, derr)
		}
	}
	if _, _, err := DecodeError([]byte{1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short error frame: %v", err)
	}
}

// FuzzDecodeAppendBinary checks that the stream's decoder never panics, and that whatever
// it accepts is valid and survives an encode/decode round trip unchanged.
func FuzzDecodeAppendBinary(f *testing.F) {
	for _, req := range sampleAppends() {
		f.Add(EncodeAppend(nil, req))
	}
	f.Add([]byte{wireVersion, 0, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{wireVersion, 3, 2, 1, 'a', 0, 0, 0, 0, 1, 2, 2, 2, 2, 1, 'k', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeAppendBinary(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		again, err := DecodeAppendBinary(EncodeAppend(nil, req))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !equalAppend(req, again) {
			t.Fatalf("round trip changed %+v into %+v", req, again)
		}
	})
}
