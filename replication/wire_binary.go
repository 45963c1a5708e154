package replication

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zkv-dev/zkv/kvstore"
)

// The stream's compact encoding of appends: varints and length-prefixed strings, no
// JSON on the hot path. An AppendRequest is
//
//	version (1 byte) | flags (1 byte: 1 complete, 2 in_sync) | epoch (varint) |
//	leader (string) | prev_index (uvarint) | prev_epoch (varint) | commit (uvarint) |
//	to (string) | n (uvarint) | n entries
//
// and an entry: flags (1 byte: 1 deleted, 2 noop) | index (uvarint) | epoch (varint) |
// version (uvarint) | key (string) | value (string); a string is a uvarint length and
// its bytes. The decoder is strict: trailing bytes, truncation and lengths past the end
// are ErrMalformed, and the decoded request passes AppendRequest.Validate.
const wireVersion = 1

const (
	flagComplete = 1 << iota
	flagInSync
)

const (
	flagDeleted = 1 << iota
	flagNoop
)

// EncodeAppend appends req's binary encoding to dst and returns the result.
func EncodeAppend(dst []byte, req AppendRequest) []byte {
	size := 32 + len(req.Leader) + len(req.To)
	for i := range req.Entries {
		size += 24 + len(req.Entries[i].Key) + len(req.Entries[i].Value)
	}
	if cap(dst)-len(dst) < size {
		dst = append(make([]byte, 0, len(dst)+size), dst...)
	}
	var flags byte
	if req.Complete {
		flags |= flagComplete
	}
	if req.InSync {
		flags |= flagInSync
	}
	dst = append(dst, wireVersion, flags)
	dst = binary.AppendVarint(dst, req.Epoch)
	dst = appendString(dst, req.Leader)
	dst = binary.AppendUvarint(dst, req.PrevIndex)
	dst = binary.AppendVarint(dst, req.PrevEpoch)
	dst = binary.AppendUvarint(dst, req.Commit)
	dst = appendString(dst, req.To)
	dst = binary.AppendUvarint(dst, uint64(len(req.Entries)))
	for i := range req.Entries {
		dst = appendEntry(dst, &req.Entries[i])
	}
	return dst
}

func appendEntry(dst []byte, e *kvstore.Entry) []byte {
	var flags byte
	if e.Deleted {
		flags |= flagDeleted
	}
	if e.Noop {
		flags |= flagNoop
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, e.Index)
	dst = binary.AppendVarint(dst, e.Epoch)
	dst = binary.AppendUvarint(dst, e.Version)
	dst = appendString(dst, e.Key)
	return appendString(dst, e.Value)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// wireReader reads the encoding; the first error sticks.
type wireReader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *wireReader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errors.New("bad uvarint"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errors.New("bad varint"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("string of %d bytes past the end", n))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *wireReader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, r.err)
	}
	return nil
}

// DecodeAppendBinary decodes an EncodeAppend encoding, strictly, and validates it as
// DecodeAppend does: ErrMalformed or ErrInvalidRequest.
func DecodeAppendBinary(p []byte) (AppendRequest, error) {
	r := &wireReader{b: p}
	if v := r.byte(); r.err == nil && v != wireVersion {
		return AppendRequest{}, fmt.Errorf("%w: wire version %d, want %d", ErrMalformed, v, wireVersion)
	}
	flags := r.byte()
	req := AppendRequest{
		Complete: flags&flagComplete != 0,
		InSync:   flags&flagInSync != 0,
	}
	if r.err == nil && flags&^(flagComplete|flagInSync) != 0 {
		r.fail(fmt.Errorf("unknown flags %#x", flags))
	}
	req.Epoch = r.varint()
	req.Leader = r.string()
	req.PrevIndex = r.uvarint()
	req.PrevEpoch = r.varint()
	req.Commit = r.uvarint()
	req.To = r.string()
	n := r.uvarint()
	// Every entry takes at least 6 bytes: a count above that is a lie, not an allocation.
	if r.err == nil && n > uint64(len(r.b))/6 {
		r.fail(fmt.Errorf("%d entries in %d bytes", n, len(r.b)))
	}
	if r.err == nil {
		req.Entries = make([]kvstore.Entry, n)
		for i := range req.Entries {
			e := &req.Entries[i]
			ef := r.byte()
			if r.err == nil && ef&^(flagDeleted|flagNoop) != 0 {
				r.fail(fmt.Errorf("entry %d: unknown flags %#x", i, ef))
			}
			e.Deleted, e.Noop = ef&flagDeleted != 0, ef&flagNoop != 0
			e.Index = r.uvarint()
			e.Epoch = r.varint()
			e.Version = r.uvarint()
			e.Key = r.string()
			e.Value = r.string()
			if r.err != nil {
				break
			}
		}
	}
	if err := r.done(); err != nil {
		return AppendRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return AppendRequest{}, err
	}
	return req, nil
}

// EncodeAppendResponse appends resp's encoding to dst: flags (1 byte: 1 partial) |
// last_index (uvarint) | last_epoch (varint) | applied (uvarint) | incarnation (string).
func EncodeAppendResponse(dst []byte, resp AppendResponse) []byte {
	var flags byte
	if resp.Partial {
		flags = 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, resp.LastIndex)
	dst = binary.AppendVarint(dst, resp.LastEpoch)
	dst = binary.AppendUvarint(dst, resp.Applied)
	return appendString(dst, resp.Incarnation)
}

// DecodeAppendResponse decodes an EncodeAppendResponse encoding, strictly.
func DecodeAppendResponse(p []byte) (AppendResponse, error) {
	r := &wireReader{b: p}
	flags := r.byte()
	if r.err == nil && flags&^1 != 0 {
		r.fail(fmt.Errorf("unknown flags %#x", flags))
	}
	resp := AppendResponse{Partial: flags&1 != 0}
	resp.LastIndex = r.uvarint()
	resp.LastEpoch = r.varint()
	resp.Applied = r.uvarint()
	resp.Incarnation = r.string()
	if err := r.done(); err != nil {
		return AppendResponse{}, err
	}
	return resp, nil
}

// EncodeError is a KindError payload: the HTTP status the internal routes would answer
// (2 bytes, big endian), then the ErrorResponse as JSON (refusals are rare).
func EncodeError(status int, body ErrorResponse) []byte {
	data, _ := json.Marshal(body) // plain strings and integers: cannot fail
	out := make([]byte, 2, 2+len(data))
	binary.BigEndian.PutUint16(out, uint16(status))
	return append(out, data...)
}

// DecodeError decodes an EncodeError payload.
func DecodeError(p []byte) (status int, body ErrorResponse, err error) {
	if len(p) < 2 {
		return 0, body, fmt.Errorf("%w: error frame of %d bytes", ErrMalformed, len(p))
	}
	if err := json.Unmarshal(p[2:], &body); err != nil {
		return 0, body, fmt.Errorf("%w: error frame: %w", ErrMalformed, err)
	}
	return int(binary.BigEndian.Uint16(p)), body, nil
}
