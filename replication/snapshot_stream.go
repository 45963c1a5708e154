package replication

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/zkv-dev/zkv/kvstore"
)

// ContentTypeSnapshotStream is the media type of a snapshot stream: the body of POST
// PathSnapshot from a leader, and the answer of GET PathSnapshot to a request that accepts
// it. A snapshot used to travel as one JSON document, decoded whole under a cap; a stream
// is a sequence of bounded records, read one at a time, so a store of any size arrives.
//
// The stream is the magic "ZKVSNAP1", then records of one kind byte, a big-endian
// uint32 payload length and the payload:
//
//	'H' header: JSON SnapshotHeader (at most 64 KiB); first, once
//	'E' entry: uvarint key length, key, uvarint value length, value, uvarint version,
//	    uvarint index, varint epoch, one flags byte (1: deleted); Header.Count of them
//	'T' trailer: big-endian uint64 count of entries, big-endian uint32 CRC-32C of every
//	    byte of the stream before the trailer record; last, then the end of the body
//
// A stream cut short has no trailer, and a corrupted one fails the checksum: either is
// ErrMalformed, and nothing of it is installed.
const ContentTypeSnapshotStream = "application/x-zkv-snapshot"

// snapshotMagic opens every snapshot stream; its last byte is the format's version.
const snapshotMagic = "ZKVSNAP1"

// Record kinds of a snapshot stream.
const (
	recordHeader  = 'H'
	recordEntry   = 'E'
	recordTrailer = 'T'
)

const (
	maxHeaderRecord = 64 << 10
	trailerLen      = 12
	// entryOverhead bounds an entry record's bytes besides its key and value: two length
	// prefixes, three integers (10 bytes each at most as varints) and the flags.
	entryOverhead = 5*binary.MaxVarintLen64 + 1
	// maxPrealloc caps the entries a decoder allocates room for on the header's word.
	maxPrealloc = 1 << 16
)

// Defaults of SnapshotLimits.
const (
	DefaultSnapshotMaxKeyBytes   = 64 << 10
	DefaultSnapshotMaxValueBytes = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SnapshotHeader is the first record of a snapshot stream: the request's fields (as
// SnapshotRequest) and the snapshot's position, and how many entries follow.
type SnapshotHeader struct {
	Epoch  int64  `json:"epoch"`            // the sender's epoch (the leader's, on a push)
	Leader string `json:"leader,omitempty"` // the sender's address
	To     string `json:"to,omitempty"`     // as AppendRequest.To
	// Index and SnapshotEpoch are the position of the last write the snapshot reflects.
	Index         uint64 `json:"index"`
	SnapshotEpoch int64  `json:"snapshot_epoch"`
	Count         uint64 `json:"count"` // entries in the stream
}

// SnapshotLimits bound what a snapshot stream's decoder takes. Zero fields get defaults.
type SnapshotLimits struct {
	// MaxKeyBytes and MaxValueBytes bound each entry, and so each record; default 64 KiB
	// and 64 MiB (a server passes its -max_key_bytes and -max_value_bytes).
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxBytes bounds the keys and values of the whole snapshot (a server passes its
	// quota); 0: no bound.
	MaxBytes int64
}

func (l SnapshotLimits) withDefaults() SnapshotLimits {
	if l.MaxKeyBytes <= 0 {
		l.MaxKeyBytes = DefaultSnapshotMaxKeyBytes
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultSnapshotMaxValueBytes
	}
	return l
}

// WriteSnapshotStream writes entries as a snapshot stream with header h (its Count is set
// to len(entries)). It writes record by record through a small buffer: nothing but the
// entries given is held whole.
func WriteSnapshotStream(w io.Writer, h SnapshotHeader, entries []kvstore.Entry) error {
	h.Count = uint64(len(entries))
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	hdr, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("replication: encode snapshot header: %w", err)
	}
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	if err := writeRecord(bw, recordHeader, hdr); err != nil {
		return err
	}
	buf := make([]byte, 0, 256)
	for _, e := range entries {
		buf = appendSnapshotEntry(buf[:0], e)
		if err := writeRecord(bw, recordEntry, buf); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var tr [trailerLen]byte
	binary.BigEndian.PutUint64(tr[:8], h.Count)
	binary.BigEndian.PutUint32(tr[8:], crc.Sum32())
	var rec [5 + trailerLen]byte
	rec[0] = recordTrailer
	binary.BigEndian.PutUint32(rec[1:5], trailerLen)
	copy(rec[5:], tr[:])
	_, err = w.Write(rec[:])
	return err
}

func writeRecord(w *bufio.Writer, kind byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// appendSnapshotEntry encodes one entry of a snapshot stream (the stream's own layout; the
// append encoding is wire_binary.go's appendEntry).
func appendSnapshotEntry(b []byte, e kvstore.Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendUvarint(b, uint64(len(e.Value)))
	b = append(b, e.Value...)
	b = binary.AppendUvarint(b, e.Version)
	b = binary.AppendUvarint(b, e.Index)
	b = binary.AppendVarint(b, e.Epoch)
	var flags byte
	if e.Deleted {
		flags |= 1
	}
	return append(b, flags)
}

// SnapshotReader decodes a snapshot stream one record at a time: Header first, then Next
// until io.EOF, which it returns only after a trailer whose count and checksum match and
// the end of the body. Any other error means the stream is not a whole snapshot: its
// entries must be dropped.
type SnapshotReader struct {
	r      *bufio.Reader
	crc    hash.Hash32
	lim    SnapshotLimits
	maxRec int
	header SnapshotHeader
	state  int // 0: before the header, 1: entries, 2: done
	n      uint64
	bytes  int64
	buf    []byte
}

// NewSnapshotReader returns a decoder of the stream r under lim.
func NewSnapshotReader(r io.Reader, lim SnapshotLimits) *SnapshotReader {
	lim = lim.withDefaults()
	return &SnapshotReader{
		r:      bufio.NewReaderSize(r, 64<<10),
		crc:    crc32.New(crcTable),
		lim:    lim,
		maxRec: lim.MaxKeyBytes + lim.MaxValueBytes + entryOverhead,
	}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: snapshot stream: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readFull reads len(p) bytes, checksummed; a body that ends first is a truncated stream.
func (d *SnapshotReader) readFull(p []byte, what string) error {
	if _, err := io.ReadFull(d.r, p); err != nil {
		return d.readErr(err, what)
	}
	d.crc.Write(p)
	return nil
}

func (d *SnapshotReader) readErr(err error, what string) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("truncated in the %s (no trailer): nothing installed", what)
	}
	return fmt.Errorf("replication: snapshot stream: read the %s: %w", what, err)
}

// record reads one record's kind and payload (into d.buf, valid until the next call).
func (d *SnapshotReader) record(max int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
		return 0, nil, d.readErr(err, "record header")
	}
	kind, n := hdr[0], binary.BigEndian.Uint32(hdr[1:])
	if kind == recordTrailer {
		// The trailer's checksum covers what precedes it: its own bytes stay out.
		if n != trailerLen {
			return 0, nil, malformed("trailer of %d bytes, want %d", n, trailerLen)
		}
		tr := make([]byte, trailerLen)
		if _, err := io.ReadFull(d.r, tr); err != nil {
			return 0, nil, d.readErr(err, "trailer")
		}
		return kind, tr, nil
	}
	d.crc.Write(hdr[:])
	if int64(n) > int64(max) {
		return 0, nil, fmt.Errorf("%w: snapshot stream: a record of %d bytes, more than %d", ErrTooLarge, n, max)
	}
	if cap(d.buf) < int(n) {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	if err := d.readFull(d.buf, "record"); err != nil {
		return 0, nil, err
	}
	return kind, d.buf, nil
}

// Header reads the stream's magic and header record (once; later calls return it again).
func (d *SnapshotReader) Header() (SnapshotHeader, error) {
	if d.state > 0 {
		return d.header, nil
	}
	magic := make([]byte, len(snapshotMagic))
	if err := d.readFull(magic, "magic"); err != nil {
		return SnapshotHeader{}, err
	}
	if string(magic) != snapshotMagic {
		return SnapshotHeader{}, malformed("not a zkv snapshot stream (magic %q)", magic)
	}
	kind, payload, err := d.record(maxHeaderRecord)
	if err != nil {
		return SnapshotHeader{}, err
	}
	if kind != recordHeader {
		return SnapshotHeader{}, malformed("first record is %q, want the header", kind)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d.header); err != nil || dec.More() {
		return SnapshotHeader{}, malformed("header: %v", err)
	}
	h := d.header
	if h.Epoch < 0 || h.SnapshotEpoch < 0 || h.SnapshotEpoch > h.Epoch {
		return SnapshotHeader{}, fmt.Errorf("%w: snapshot epoch %d, request epoch %d", ErrInvalidRequest, h.SnapshotEpoch, h.Epoch)
	}
	d.state = 1
	return h, nil
}

// Next returns the next entry, or io.EOF after a whole, verified stream.
func (d *SnapshotReader) Next() (kvstore.Entry, error) {
	if d.state == 0 {
		if _, err := d.Header(); err != nil {
			return kvstore.Entry{}, err
		}
	}
	if d.state == 2 {
		return kvstore.Entry{}, io.EOF
	}
	sum := d.crc.Sum32() // before the record: a trailer's checksum covers the bytes up to it
	kind, payload, err := d.record(d.maxRec)
	if err != nil {
		return kvstore.Entry{}, err
	}
	switch kind {
	case recordEntry:
	case recordTrailer:
		return kvstore.Entry{}, d.finish(payload, sum)
	default:
		return kvstore.Entry{}, malformed("record kind %q", kind)
	}
	if d.n >= d.header.Count {
		return kvstore.Entry{}, malformed("more entries than the header's %d", d.header.Count)
	}
	e, err := d.entry(payload)
	if err != nil {
		return kvstore.Entry{}, err
	}
	d.n++
	d.bytes += kvstore.Size(e)
	if d.lim.MaxBytes > 0 && d.bytes > d.lim.MaxBytes {
		return kvstore.Entry{}, fmt.Errorf("%w: snapshot stream: more than %d bytes of keys and values", ErrTooLarge, d.lim.MaxBytes)
	}
	return e, nil
}

func (d *SnapshotReader) finish(tr []byte, sum uint32) error {
	count, want := binary.BigEndian.Uint64(tr[:8]), binary.BigEndian.Uint32(tr[8:])
	switch {
	case count != d.header.Count || count != d.n:
		return malformed("trailer counts %d entries, header %d, received %d", count, d.header.Count, d.n)
	case want != sum:
		return malformed("checksum %08x, computed %08x: corrupted", want, sum)
	}
	if _, err := d.r.ReadByte(); err == nil {
		return malformed("data after the trailer")
	} else if !errors.Is(err, io.EOF) {
		return d.readErr(err, "end")
	}
	d.state = 2
	return io.EOF
}

// entry decodes an entry record; its key and value are copied out of the record buffer.
func (d *SnapshotReader) entry(p []byte) (kvstore.Entry, error) {
	var e kvstore.Entry
	str := func(max int, what string) (string, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return "", malformed("entry %d: bad %s length", d.n, what)
		}
		if n > uint64(max) {
			return "", fmt.Errorf("%w: snapshot stream: entry %d: a %s of %d bytes, more than %d", ErrTooLarge, d.n, what, n, max)
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		if !utf8.ValidString(s) {
			return "", malformed("entry %d: %s is not UTF-8", d.n, what)
		}
		return s, nil
	}
	uv := func(what string) (uint64, error) {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return 0, malformed("entry %d: bad %s", d.n, what)
		}
		p = p[k:]
		return v, nil
	}
	var err error
	if e.Key, err = str(d.lim.MaxKeyBytes, "key"); err != nil {
		return e, err
	}
	if e.Value, err = str(d.lim.MaxValueBytes, "value"); err != nil {
		return e, err
	}
	if e.Version, err = uv("version"); err != nil {
		return e, err
	}
	if e.Index, err = uv("index"); err != nil {
		return e, err
	}
	ep, k := binary.Varint(p)
	if k <= 0 {
		return e, malformed("entry %d: bad epoch", d.n)
	}
	e.Epoch, p = ep, p[k:]
	if len(p) != 1 || p[0]&^1 != 0 {
		return e, malformed("entry %d: bad flags or trailing bytes", d.n)
	}
	e.Deleted = p[0]&1 != 0
	switch {
	case e.Key == "":
		return e, fmt.Errorf("%w: snapshot entry %d has an empty key", ErrInvalidRequest, d.n)
	case e.Index > d.header.Index:
		return e, fmt.Errorf("%w: snapshot entry %d has index %d above the snapshot's %d", ErrInvalidRequest, d.n, e.Index, d.header.Index)
	case e.Epoch < 0:
		return e, fmt.Errorf("%w: snapshot entry %d has a negative epoch", ErrInvalidRequest, d.n)
	}
	return e, nil
}

// ReadSnapshotStream decodes a whole snapshot stream into a SnapshotRequest. admit, when
// set, is asked about the header before any entry is read: its error ends the decoding
// (a replica refuses a deposed leader's snapshot without reading it). The request is
// validated as DecodeSnapshot's; on any error nothing of the stream is returned.
func ReadSnapshotStream(r io.Reader, lim SnapshotLimits, admit func(SnapshotHeader) error) (SnapshotRequest, error) {
	d := NewSnapshotReader(r, lim)
	h, err := d.Header()
	if err != nil {
		return SnapshotRequest{}, err
	}
	if admit != nil {
		if err := admit(h); err != nil {
			return SnapshotRequest{}, err
		}
	}
	entries := make([]kvstore.Entry, 0, min(h.Count, maxPrealloc))
	for {
		e, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return SnapshotRequest{}, err
		}
		entries = append(entries, e)
	}
	req := SnapshotRequest{Epoch: h.Epoch, Leader: h.Leader, To: h.To,
		Snapshot: kvstore.Snapshot{Index: h.Index, Epoch: h.SnapshotEpoch, Entries: entries}}
	if err := req.Validate(); err != nil {
		return SnapshotRequest{}, err
	}
	return req, nil
}

// Admits reports whether InstallSnapshot would take a snapshot from leader in epoch by
// the fence and CheckLeader, changing nothing: a server asks it on a stream's header, so
// a deposed leader's snapshot is refused before its entries are read. InstallSnapshot
// checks everything again.
func (f *Follower) Admits(epoch int64, leader string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.admit(epoch, leader)
}

// snapshotBody is the body of a snapshot's POST: each attempt reads a new stream, encoded
// by a goroutine into a pipe as the request is sent. The HTTP client closes the body when
// it is done with it (sent, failed or abandoned), which ends the goroutine.
func snapshotBody(req SnapshotRequest) retryablehttp.ReaderFunc {
	h := SnapshotHeader{Epoch: req.Epoch, Leader: req.Leader, To: req.To,
		Index: req.Snapshot.Index, SnapshotEpoch: req.Snapshot.Epoch}
	return func() (io.Reader, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(WriteSnapshotStream(pw, h, req.Snapshot.Entries)) }()
		return pr, nil
	}
}

// DecodeSnapshotBody decodes the body of POST PathSnapshot by its media type: a stream
// (ContentTypeSnapshotStream) under lim, with admit asked on its header as
// ReadSnapshotStream does, or the older single JSON document (DecodeSnapshot) under
// jsonLimit, which senders before the stream still send.
func DecodeSnapshotBody(contentType string, r io.Reader, jsonLimit int64, lim SnapshotLimits, admit func(SnapshotHeader) error) (SnapshotRequest, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == ContentTypeSnapshotStream {
		return ReadSnapshotStream(r, lim, admit)
	}
	return DecodeSnapshot(r, jsonLimit)
}
