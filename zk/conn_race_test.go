package zk

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The one change this fork makes to upstream v1.0.4: Conn.lastZxid is read by
// sendSetWatches on the connection loop's goroutine while the new connection's
// recvLoop already stores the zxid of the replies it reads. Run with -race:
// against upstream's plain accesses the detector reports the race here.
//
// The stand-in server answers each handshake together with a reply carrying a
// zxid (as ZooKeeper answers requests queued while the client was away, right
// after the handshake), then answers the set-watches request and drops the
// connection, so that the next round is a reconnect that re-sends the watches.
// A hook holds the send loop until recvLoop has taken that reply in, so the
// unsynchronised interleaving happens every time, not by luck of scheduling.
func TestSetWatchesAfterReconnectDoesNotRace(t *testing.T) {
	const rounds = 2
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv sync.WaitGroup
	defer srv.Wait()
	defer ln.Close()

	start := make(chan struct{})    // the test has set a watch
	setWatches := make(chan int, 1) // a round's set-watches arrived
	srv.Add(1)
	go func() {
		defer srv.Done()
		for round := 1; ; round++ {
			nc, err := ln.Accept()
			if err != nil {
				return // the listener closed: the test is over
			}
			if round == 1 {
				<-start
			}
			serveRound(t, nc, round, round <= rounds, setWatches)
		}
	}()

	// recvLoop logs a reply to no request of ours after storing its zxid.
	stored := make(chan struct{}, 1)
	logger := loggerFunc(func(format string, _ ...interface{}) {
		if strings.HasPrefix(format, "Response for unknown request") {
			select {
			case stored <- struct{}{}:
			default:
			}
		}
	})
	holdSendLoop := func(c *Conn) {
		c.resendZkAuthFn = func(context.Context, *Conn) error {
			select {
			case <-stored:
			case <-time.After(5 * time.Second):
				t.Error("recvLoop never stored the early reply's zxid")
			}
			return nil
		}
	}
	c, events, err := Connect([]string{ln.Addr().String()}, 4*time.Second,
		WithLogger(logger), WithLogInfo(false), holdSendLoop)
	if err != nil {
		t.Fatal(err)
	}
	c.addWatcher("/watched", watchTypeData)
	close(start)
	for round := 1; round <= rounds; round++ {
		select {
		case got := <-setWatches:
			if got != round {
				t.Fatalf("set-watches in round %d, want %d", got, round)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: no set-watches request", round)
		}
	}
	c.Close()
	for range events { // closed when the connection's loop has ended
	}
}

// serveRound plays one connection of the stand-in server. With drop set it
// closes the connection once the set-watches request is answered; otherwise
// it answers until the client goes.
func serveRound(t *testing.T, nc net.Conn, round int, drop bool, setWatches chan<- int) {
	defer nc.Close()
	if _, err := readFrame(nc); err != nil { // the connect request
		return
	}
	hello, err := frame(&connectResponse{TimeOut: 4000, SessionID: 0x5eed, Passwd: make([]byte, 16)})
	if err != nil {
		t.Error(err)
		return
	}
	// A reply with a zxid, in the same write: recvLoop stores it as soon as it starts.
	early, err := frame(&responseHeader{Xid: 0x7ffffff0, Zxid: int64(100 * round)})
	if err != nil {
		t.Error(err)
		return
	}
	if _, err := nc.Write(append(hello, early...)); err != nil {
		return
	}
	for {
		req, err := readFrame(nc)
		if err != nil {
			return
		}
		var h requestHeader
		if _, err := decodePacket(req, &h); err != nil {
			t.Error(err)
			return
		}
		reply, err := frame(&responseHeader{Xid: h.Xid, Zxid: int64(100*round + 1)})
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := nc.Write(reply); err != nil {
			return
		}
		switch {
		case h.Opcode == opSetWatches:
			setWatches <- round
			if drop {
				return
			}
		case h.Opcode == opClose:
			return
		}
	}
}

func frame(st interface{}) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := encodePacket(buf[4:], st)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(buf[:4], uint32(n))
	return buf[:n+4], nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		return nil, errors.New("frame too large")
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

type loggerFunc func(format string, args ...interface{})

func (f loggerFunc) Printf(format string, args ...interface{}) { f(format, args...) }

// SessionTimeout reports what the server granted, not what was asked for, and
// can be read while the connection's goroutines run.
func TestSessionTimeoutIsTheGrantedOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv sync.WaitGroup
	defer srv.Wait()
	defer ln.Close()
	asked := make(chan struct{})
	srv.Add(1)
	go func() {
		defer srv.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		<-asked
		serveRound(t, nc, 1, false, make(chan int, 1)) // grants 4s
	}()

	c, events, err := Connect([]string{ln.Addr().String()}, 30*time.Second,
		WithLogger(loggerFunc(func(string, ...interface{}) {})), WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SessionTimeout(); got != 30*time.Second {
		t.Errorf("before a session: %v, want the 30s asked for", got)
	}
	close(asked)
	deadline := time.Now().Add(10 * time.Second)
	for c.State() != StateHasSession {
		if time.Now().After(deadline) {
			t.Fatal("no session")
		}
		time.Sleep(time.Millisecond)
	}
	if got := c.SessionTimeout(); got != 4*time.Second {
		t.Errorf("with a session: %v, want the 4s granted", got)
	}
	c.Close()
	for range events {
	}
}

// A session no server takes back within its timeout is given up for a new one (zkv
// patch). The stand-in plays an ensemble that lost its data: after the first connection
// drops, it refuses (closes without a word) every connect request that carries a session
// or a last-seen zxid, as ZooKeeper does with "has seen zxid ... our last zxid is 0x0".
// Upstream's client retries the old session forever; this one must report the expiry and
// come back with a new session asked for with no zxid.
func TestAbandonedSessionIsReplacedByANewOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv sync.WaitGroup
	defer srv.Wait()
	defer ln.Close()
	refused := make(chan struct{}, 100)
	fresh := make(chan connectRequest, 1)
	srv.Add(1)
	go func() {
		defer srv.Done()
		for round := 1; ; round++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := readFrame(nc)
			if err != nil {
				nc.Close()
				continue
			}
			var req connectRequest
			if _, err := decodePacket(b, &req); err != nil {
				t.Error(err)
				nc.Close()
				return
			}
			switch {
			case round == 1:
				// A session, and a reply with a zxid so that the client has seen one.
				hello, _ := frame(&connectResponse{TimeOut: 2500, SessionID: 0x5eed, Passwd: make([]byte, 16)})
				early, _ := frame(&responseHeader{Xid: 0x7ffffff0, Zxid: 0x100000007})
				_, _ = nc.Write(append(hello, early...))
				time.Sleep(100 * time.Millisecond)
				nc.Close() // the ensemble goes away
			case req.SessionID != 0 || req.LastZxidSeen != 0:
				refused <- struct{}{}
				nc.Close()
			default:
				fresh <- req
				hello, _ := frame(&connectResponse{TimeOut: 2500, SessionID: 0x6eed, Passwd: make([]byte, 16)})
				_, _ = nc.Write(hello)
				for {
					if _, err := readFrame(nc); err != nil {
						nc.Close()
						return
					}
				}
			}
		}
	}()

	c, events, err := Connect([]string{ln.Addr().String()}, 2500*time.Millisecond,
		WithLogger(loggerFunc(func(string, ...interface{}) {})), WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Close()
		for range events {
		}
	}()
	var states []State
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type != EventSession {
				continue
			}
			states = append(states, ev.State)
			if ev.State == StateHasSession && c.SessionID() == 0x6eed {
				if !slices.Contains(states, StateExpired) {
					t.Fatalf("a new session without an expiry first: %v", states)
				}
				req := <-fresh
				if req.LastZxidSeen != 0 || req.SessionID != 0 {
					t.Fatalf("the new session was asked for with zxid %#x, session %#x", req.LastZxidSeen, req.SessionID)
				}
				if len(refused) == 0 {
					t.Fatal("the old session was never offered to the refusing ensemble")
				}
				return
			}
		case <-deadline:
			t.Fatalf("no new session after the ensemble came back empty; states %v, refusals %d", states, len(refused))
		}
	}
}
