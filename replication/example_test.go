package replication_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
)

// replicaHandler is how a server mounts a Follower on the internal routes.
func replicaHandler(f *replication.Follower) http.Handler {
	answer := func(w http.ResponseWriter, resp replication.AppendResponse, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			status, body := replication.ErrorStatus(err)
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
			return
		}
		_ = json.NewEncoder(w).Encode(resp)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+replication.PathAppend, func(w http.ResponseWriter, r *http.Request) {
		req, err := replication.DecodeAppend(r.Body, replication.DefaultMaxAppendBytes)
		if err != nil {
			answer(w, replication.AppendResponse{}, err)
			return
		}
		resp, err := f.Append(r.Context(), req)
		answer(w, resp, err)
	})
	mux.HandleFunc("POST "+replication.PathSnapshot, func(w http.ResponseWriter, r *http.Request) {
		req, err := replication.DecodeSnapshotBody(r.Header.Get("Content-Type"), r.Body,
			replication.DefaultMaxSnapshotBytes, replication.SnapshotLimits{}, nil)
		if err != nil {
			answer(w, replication.AppendResponse{}, err)
			return
		}
		resp, err := f.InstallSnapshot(r.Context(), req)
		answer(w, resp, err)
	})
	return mux
}

// A leader replicating to one replica and waiting for its acknowledgement.
func ExampleFanout() {
	// The replica: a store behind a Follower behind HTTP.
	replicaStore, _ := kvstore.New(kvstore.Config{})
	follower, _ := replication.NewFollower(replication.FollowerConfig{Store: replicaStore})
	srv := httptest.NewServer(replicaHandler(follower))
	defer srv.Close()

	// The leader: store, log, fanout.
	store, _ := kvstore.New(kvstore.Config{})
	log, _ := replication.NewLog(replication.LogConfig{})
	fan, err := replication.NewFanout(replication.Config{
		Self: "127.0.0.1:5000", Epoch: 1, Log: log, Snapshot: store.Snapshot,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fan.Close()
	fan.SetReplicas([]string{srv.URL})

	// The write path: apply, log, enqueue, wait.
	e := store.Put("greeting", "hello", 1)
	_ = log.Append(e)
	fan.Enqueue(e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acked, err := fan.Wait(ctx, e.Index, replication.AckAll)
	fmt.Println(acked, err)

	got, ok := replicaStore.Get("greeting")
	fmt.Println(got.Value, got.Version, ok)
	// Output:
	// 1 <nil>
	// hello 1 true
}

// The same write path without sockets: the Fanout's Peers call Followers in this process,
// and the link to a replica fails on demand.
func ExampleInmemTransport() {
	net := replication.NewInmemTransport(time.Second)
	replicaStore, _ := kvstore.New(kvstore.Config{})
	follower, _ := replication.NewFollower(replication.FollowerConfig{Store: replicaStore})
	net.Register("replica:1", follower)

	store, _ := kvstore.New(kvstore.Config{})
	log, _ := replication.NewLog(replication.LogConfig{})
	fan, _ := replication.NewFanout(replication.Config{
		Self: "leader:1", Epoch: 1, Log: log, Snapshot: store.Snapshot, Peers: net,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	})
	defer fan.Close()
	fan.SetReplicas([]string{"replica:1"})

	net.DropReplies("replica:1", 1) // the first answer is lost: the stream probes and resumes
	e := store.Put("greeting", "hello", 1)
	_ = log.Append(e)
	fan.Enqueue(e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acked, err := fan.Wait(ctx, e.Index, replication.AckAll)
	fmt.Println(acked, err)
	got, ok := replicaStore.Get("greeting")
	fmt.Println(got.Value, ok)
	// Output:
	// 1 <nil>
	// hello true
}

func ExampleFollower() {
	store, _ := kvstore.New(kvstore.Config{})
	f, _ := replication.NewFollower(replication.FollowerConfig{Store: store})
	ctx := context.Background()

	batch := replication.AppendRequest{Epoch: 2, Leader: "l:1", Entries: []kvstore.Entry{
		{Key: "a", Value: "1", Version: 1, Index: 1, Epoch: 2},
		{Key: "b", Value: "2", Version: 1, Index: 2, Epoch: 2},
	}, Commit: 1}
	resp, err := f.Append(ctx, batch)
	fmt.Println(resp.LastIndex, resp.Applied, err) // both held, only the committed one applied
	batch.Commit = 2
	resp, err = f.Append(ctx, batch) // a retry: nothing taken twice; the new commit index applies b
	fmt.Println(resp.LastIndex, resp.Applied, err)

	// A batch that does not follow our last position.
	_, err = f.Append(ctx, replication.AppendRequest{Epoch: 2, PrevIndex: 5, PrevEpoch: 2,
		Entries: []kvstore.Entry{{Key: "c", Index: 6, Epoch: 2}}})
	var mm *replication.LogMismatchError
	fmt.Println(errors.As(err, &mm), mm.LastIndex)

	// A deposed leader's append.
	f.ObserveEpoch(3)
	_, err = f.Append(ctx, replication.AppendRequest{Epoch: 2, PrevIndex: 2, PrevEpoch: 2})
	status, body := replication.ErrorStatus(err)
	fmt.Println(status, body.Error.Code, body.Epoch)
	// Output:
	// 2 1 <nil>
	// 2 2 <nil>
	// true 2
	// 412 stale_epoch 3
}

func ExampleLog() {
	log, _ := replication.NewLog(replication.LogConfig{Capacity: 3})
	for i := uint64(1); i <= 5; i++ {
		_ = log.Append(kvstore.Entry{Key: "k", Index: i, Epoch: 1})
	}
	log.SetApplied(5) // only applied entries may fall off the front
	base, _ := log.Base()
	_, ok := log.EntriesFrom(2, 0) // fell off the front: a replica this far behind needs a snapshot
	es, _ := log.EntriesFrom(4, 0)
	fmt.Println(base, ok, len(es))
	// Output: 2 false 2
}

func ExampleParseAckMode() {
	m, err := replication.ParseAckMode("majority")
	fmt.Println(m, err)
	_, err = replication.ParseAckMode("most")
	fmt.Println(err)
	// Output:
	// majority <nil>
	// replication: unknown ack mode "most" (want all, majority or leader)
}
