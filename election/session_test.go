package election

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

func TestEventQueueKeepsEverythingInOrder(t *testing.T) {
	q := newEventQueue()
	done := make(chan struct{})
	const n = 10000 // far beyond go-zookeeper's buffer of 6
	for i := range n {
		q.push(zk.Event{Type: zk.EventSession, Path: "", State: zk.State(i)})
	}
	go func() {
		defer close(done)
		q.run()
	}()
	for i := range n {
		select {
		case ev := <-q.out:
			if ev.State != zk.State(i) {
				t.Fatalf("event %d has state %d", i, ev.State)
			}
		case <-time.After(waitLimit):
			t.Fatalf("event %d never delivered", i)
		}
	}
	q.push(zk.Event{})
	q.close()
	<-done
	if _, ok := <-q.out; ok {
		// An event may be delivered before close wins the race; the
		// channel must be closed right after.
		if _, ok := <-q.out; ok {
			t.Fatal("out not closed")
		}
	}
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDialReportsStatesAndCloses(t *testing.T) {
	logger, _ := testLogger(t)
	s, err := Dial([]string{freeAddr(t)}, 2*time.Second, WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitLimit)
	for seen := false; !seen; {
		select {
		case ev := <-s.Events:
			seen = ev.Type == zk.EventSession && ev.State == zk.StateConnecting
		case <-deadline:
			t.Fatal("no StateConnecting event")
		}
	}
	s.Close()
	s.Close() // idempotent
	for range s.Events {
	}
}

func TestDialAuthBoundedByContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := DialContext(ctx, []string{freeAddr(t)}, 2*time.Second, WithDigestAuth("u", "p"))
	// go-zookeeper fails pending requests with ErrNoServer once it has
	// tried every server; whichever comes first ends the wait.
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, zk.ErrNoServer) {
		t.Fatalf("got %v, want deadline exceeded or no server", err)
	}
}

func TestDialValidates(t *testing.T) {
	if _, err := Dial(nil, time.Second); err == nil {
		t.Error("no servers accepted")
	}
	if _, err := Dial([]string{"127.0.0.1:1"}, 0); err == nil {
		t.Error("zero timeout accepted")
	}
}
