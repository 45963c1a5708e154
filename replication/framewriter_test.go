package replication

import (
	"bufio"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// countingConn counts the Write calls on a net.Conn and can make them fail.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	fail   error
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	err := c.fail
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// tcpPair is a connected pair of loopback TCP connections: unlike net.Pipe, a write
// returns once the kernel has the bytes.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	return a, b
}

// readFrames reads n frames from conn and returns their ids in order.
func readFrames(t *testing.T, conn net.Conn, n int) []uint64 {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	var ids []uint64
	for range n {
		kind, id, payload, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", len(ids), err)
		}
		if kind != KindUser || len(payload) != 100 {
			t.Fatalf("frame %d: kind %d, %d bytes", len(ids), kind, len(payload))
		}
		ids = append(ids, id)
	}
	return ids
}

// The frames written before the flusher runs leave in one write(2), in their order; the old
// writer, which flushed whenever no other writer was waiting for its lock, made one per
// frame here.
func TestFrameWriterCoalesces(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the flusher runs only once this goroutine waits
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	cc := &countingConn{Conn: a}
	w := newFrameWriter(cc)
	defer w.close()
	const n = 50
	payload := make([]byte, 100)
	for i := range n {
		if err := w.write(KindUser, uint64(i+1), payload); err != nil {
			t.Fatal(err)
		}
	}
	ids := readFrames(t, b, n)
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("frame %d has id %d: out of order", i, id)
		}
	}
	// 1 unless the runtime preempted this goroutine mid-loop (after 10 ms, which a loaded
	// CI machine can make happen) and let the flusher in early: a few then. The old rule
	// made 50.
	if got := cc.count(); got > 5 {
		t.Fatalf("%d frames took %d writes, want 1 (a few at most)", n, got)
	}
	// A frame written later is flushed too, without another write to push it.
	if err := w.write(KindUser, n+1, payload); err != nil {
		t.Fatal(err)
	}
	if ids := readFrames(t, b, 1); ids[0] != n+1 {
		t.Fatalf("id %d", ids[0])
	}
}

// A flush that fails closes the connection, and later writes get the error: the calls
// whose frames were buffered see the stream end, and their outcome is unknown.
func TestFrameWriterFlushFailureClosesTheConn(t *testing.T) {
	a, b := tcpPair(t)
	defer b.Close()
	boom := errors.New("boom")
	cc := &countingConn{Conn: a, fail: boom}
	w := newFrameWriter(cc)
	defer w.close()
	if err := w.write(KindUser, 1, make([]byte, 100)); err != nil {
		t.Fatalf("the first write is only buffered, got %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := w.write(KindUser, 2, make([]byte, 100))
		if errors.Is(err, boom) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write after a failed flush: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection is still open")
	}
	w.close()
	w.close() // idempotent
	if err := w.write(KindUser, 3, nil); err == nil {
		t.Fatal("write after close")
	}
}

// close returns at once while a flush is blocked on a peer that reads nothing: it closes
// the connection first, which ends the write.
func TestFrameWriterCloseDuringABlockedFlush(t *testing.T) {
	a, b := net.Pipe() // a write blocks until the other end reads: b never does
	defer b.Close()
	w := newFrameWriter(a)
	if err := w.write(KindUser, 1, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the flusher is in its write by now
	done := make(chan struct{})
	go func() { w.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(streamWriteTimeout / 2):
		t.Fatalf("close still blocked after %v behind a flush", streamWriteTimeout/2)
	}
}
