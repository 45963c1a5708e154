package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"
)

// StreamTransportConfig configures a StreamTransport.
type StreamTransportConfig struct {
	Token          string        // the cluster token, sent in every stream's upgrade
	RequestTimeout time.Duration // per append; default 2s
	// HTTP carries snapshots, and appends to replicas that do not serve the stream
	// (ErrStreamUnsupported: an older server); required. Close leaves it open.
	HTTP Transport
	// TLS runs the streams over TLS (see StreamClientConfig.TLS); nil: plain TCP.
	TLS *tls.Config
}

// StreamTransport is the Transport of the stream (see PathStream): appends travel in the
// compact binary encoding over one long-lived connection per replica, pipelined with
// the other calls on it; snapshots, rare and large, go as HTTP requests. A replica whose
// server has no stream route gets plain HTTP appends, asked again after a minute.
type StreamTransport struct {
	cfg    StreamTransportConfig
	client *StreamClient

	mu     sync.Mutex
	legacy map[string]time.Time // replicas without the stream, until when to use HTTP
}

const legacyRecheck = time.Minute

// NewStreamTransport validates cfg and returns a StreamTransport.
func NewStreamTransport(cfg StreamTransportConfig) (*StreamTransport, error) {
	if cfg.HTTP == nil {
		return nil, fmt.Errorf("%w: StreamTransportConfig.HTTP is required", ErrInvalidConfig)
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("%w: negative RequestTimeout", ErrInvalidConfig)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	return &StreamTransport{
		cfg:    cfg,
		client: NewStreamClient(StreamClientConfig{Token: cfg.Token, DialTimeout: cfg.RequestTimeout, TLS: cfg.TLS}),
		legacy: make(map[string]time.Time),
	}, nil
}

// Append implements Transport. It never retries: the Fanout probes a replica again after
// a failure.
func (t *StreamTransport) Append(ctx context.Context, replica string, req AppendRequest) (AppendResponse, error) {
	t.mu.Lock()
	until, legacy := t.legacy[replica]
	t.mu.Unlock()
	if legacy && time.Now().Before(until) {
		return t.cfg.HTTP.Append(ctx, replica, req)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
	defer cancel()
	kind, payload, err := t.client.Call(ctx, replica, KindAppend, EncodeAppend(nil, req))
	if t.unsupported(replica, err) {
		return t.cfg.HTTP.Append(ctx, replica, req)
	}
	return t.answer(replica, req, kind, payload, err)
}

// StartAppend implements Pipeliner: the append is on the stream when it returns, behind
// the ones started before it. A replica without the stream gets it over HTTP, answered
// before StartAppend returns.
func (t *StreamTransport) StartAppend(ctx context.Context, replica string, req AppendRequest) *PendingAppend {
	p := newPendingAppend()
	t.mu.Lock()
	until, legacy := t.legacy[replica]
	t.mu.Unlock()
	if legacy && time.Now().Before(until) {
		p.finish(t.cfg.HTTP.Append(ctx, replica, req))
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
	wait, err := t.client.Start(ctx, replica, KindAppend, EncodeAppend(nil, req))
	if err != nil {
		defer cancel()
		if t.unsupported(replica, err) {
			p.finish(t.cfg.HTTP.Append(ctx, replica, req))
		} else {
			p.finish(t.answer(replica, req, 0, nil, err))
		}
		return p
	}
	go func() {
		defer cancel()
		kind, payload, err := wait()
		p.finish(t.answer(replica, req, kind, payload, err))
	}()
	return p
}

// unsupported reports whether err says the replica has no stream (then it is asked over
// HTTP for a while).
func (t *StreamTransport) unsupported(replica string, err error) bool {
	if errors.Is(err, ErrStreamUnsupported) {
		t.mu.Lock()
		t.legacy[replica] = time.Now().Add(legacyRecheck)
		t.mu.Unlock()
	}
	return errors.Is(err, ErrStreamUnsupported) || errors.Is(err, ErrStreamHandshake)
}

// answer decodes a stream append's answer.
func (t *StreamTransport) answer(replica string, req AppendRequest, kind byte, payload []byte, err error) (AppendResponse, error) {
	if err != nil {
		return AppendResponse{}, fmt.Errorf("replication: append to %s: %w", replica, err)
	}
	switch kind {
	case KindAppendOK:
		resp, err := DecodeAppendResponse(payload)
		if err != nil {
			return AppendResponse{}, fmt.Errorf("replication: append to %s: answer: %w", replica, err)
		}
		return resp, nil
	case KindError:
		status, body, err := DecodeError(payload)
		if err != nil {
			return AppendResponse{}, fmt.Errorf("replication: append to %s: answer: %w", replica, err)
		}
		return AppendResponse{}, refusal(replica, status, body, req.Epoch)
	}
	return AppendResponse{}, fmt.Errorf("replication: append to %s: answer of unknown kind %d", replica, kind)
}

// Snapshot implements Transport over HTTP.
func (t *StreamTransport) Snapshot(ctx context.Context, replica string, req SnapshotRequest) (AppendResponse, error) {
	return t.cfg.HTTP.Snapshot(ctx, replica, req)
}

// Close ends the streams. Idempotent.
func (t *StreamTransport) Close() error { return t.client.Close() }

var (
	_ Transport = (*StreamTransport)(nil)
	_ Pipeliner = (*StreamTransport)(nil)
)
