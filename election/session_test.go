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

// fakeSession is a Session over a fake Conn: the Conn's events are fanned
// out as Dial's callback does, and its close closes every stream.
func fakeSession(t *testing.T, conn *fakeConn) *Session {
	t.Helper()
	s := &Session{conn: conn, drained: make(chan struct{}), subs: make(map[*eventQueue]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for ev := range conn.events {
			s.publish(ev)
		}
		close(s.drained)
	}()
	t.Cleanup(func() {
		conn.close()
		<-s.drained
		s.closeSubscribers()
		s.wg.Wait()
	})
	return s
}

func TestSubscribeFansOutWithoutLoss(t *testing.T) {
	s := &Session{drained: make(chan struct{}), subs: make(map[*eventQueue]struct{})}
	a, cancelA := s.Subscribe()
	b, _ := s.Subscribe()
	const n = 100 // beyond go-zookeeper's buffer of 6, none read meanwhile
	for i := range n {
		s.publish(zk.Event{Type: zk.EventSession, State: zk.State(i)})
	}
	for _, ch := range []<-chan zk.Event{a, b} {
		for i := range n {
			if ev := <-ch; ev.State != zk.State(i) {
				t.Fatalf("event %d has state %d", i, ev.State)
			}
		}
	}
	cancelA()
	cancelA() // idempotent
	for range a {
	}
	s.publish(zk.Event{Type: zk.EventSession, State: zk.StateHasSession})
	if ev := <-b; ev.State != zk.StateHasSession {
		t.Fatalf("after one stream ended the other got %+v", ev)
	}
	s.closeSubscribers()
	for range b {
	}
	if _, ok := <-func() <-chan zk.Event { ch, _ := s.Subscribe(); return ch }(); ok {
		t.Fatal("a stream subscribed after close is open")
	}
	s.wg.Wait()
}

func TestCandidatesShareSession(t *testing.T) {
	srv := newFakeServer()
	sess := fakeSession(t, srv.connect())
	conn := sess.conn.(*fakeConn)
	type cand struct {
		c    *Candidate
		sink *logSink
	}
	mk := func(root, id string) cand {
		logger, sink := testLogger(t)
		c, err := New(Config{Session: sess, Root: root, ID: id, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Join(context.Background()); err != nil {
			t.Fatal(err)
		}
		return cand{c, sink}
	}
	a, b := mk("/svc-a", "a"), mk("/svc-b", "b")
	waitFor(t, "both to lead", func() bool { return a.c.IsLeader() && b.c.IsLeader() })
	obs, err := NewObserver(ObserverConfig{Session: sess, Root: "/svc-b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obs.Close() })
	waitFor(t, "the observer to see b lead", func() bool { return obs.View().Leader.ID == "b" })
	if ka, kb := srv.children("/svc-a/election"), srv.children("/svc-b/election"); len(ka) != 1 || len(kb) != 1 {
		t.Fatalf("children %v and %v, want one each", ka, kb)
	}

	conn.disconnect()
	for _, x := range []cand{a, b} {
		waitFor(t, x.c.cfg.ID+" to hear of the disconnection", func() bool {
			return len(x.sink.grep("zookeeper disconnected")) == 1
		})
	}
	conn.reconnect()
	waitFor(t, "both to lead again", func() bool { return a.c.IsLeader() && b.c.IsLeader() })

	if err := a.c.Close(); err != nil {
		t.Fatal(err)
	}
	if ka := srv.children("/svc-a/election"); len(ka) != 0 {
		t.Fatalf("a's node left: %v", ka)
	}
	if !b.c.IsLeader() || len(srv.children("/svc-b/election")) != 1 {
		t.Fatal("closing a disturbed b")
	}
	conn.disconnect()
	waitFor(t, "b to hear of the second disconnection", func() bool {
		return len(b.sink.grep("zookeeper disconnected")) == 2
	})
	conn.reconnect()
	waitFor(t, "b to lead again", b.c.IsLeader)
}
