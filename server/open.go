package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/zk"
)

// digestUser is the ZooKeeper digest identity the servers share when a cluster token is
// set; the token is its password.
const digestUser = "zkv"

// electionRoot is the election's Root: the servers' znodes are /election/server<seq>, where
// clients, operators and the contract tests look for them.
const electionRoot = "/"

// Open wires a Server to the real parts: it listens on Host:Port (unless cfg.Listener is
// set), dials the ZooKeeper ensemble cfg.ZooKeeper, creates the election candidate (ID,
// Address and Meta published in its znode; digest ACLs when a cluster token is set) and an
// empty kvstore. ctx bounds the dial (with a token it waits for authentication).
func Open(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.ZooKeeper) == 0 {
		return nil, fmt.Errorf("%w: no ZooKeeper servers", ErrInvalidConfig)
	}
	if _, err := loadTLS(cfg); err != nil { // before anything is registered (New reads them again)
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger()
	}
	if cfg.Listener == nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(withDefault(cfg.Host, DefaultHost), strconv.Itoa(cfg.Port)))
		if err != nil {
			return nil, fmt.Errorf("server: listen: %w", err)
		}
		cfg.Listener = ln
		if cfg.Address == "" && cfg.Port == 0 {
			cfg.Address = ln.Addr().String()
		}
	}
	if cfg.Incarnation == "" {
		cfg.Incarnation = newIncarnation()
	}
	full := cfg.withDefaults()
	fail := func(err error) (*Server, error) {
		_ = cfg.Listener.Close()
		return nil, err
	}

	opts := []election.DialOption{election.WithLogger(logger)}
	userToken := cfg.ClusterToken != ""
	if userToken {
		opts = append(opts, election.WithDigestAuth(digestUser, cfg.ClusterToken))
	}
	opts = append(opts, election.WithoutEvents()) // the candidate subscribes
	sess, err := election.DialContext(ctx, cfg.ZooKeeper, full.SessionTimeout, opts...)
	if err != nil {
		return fail(fmt.Errorf("server: %w", err))
	}
	if !userToken {
		// No open door by default: the servers share a random secret kept in ZooKeeper
		// beside the election. Whoever can join the election can read it; a client that
		// can only reach the HTTP port cannot, so the internal routes refuse it.
		secret, err := clusterSecret(ctx, sess.Conn, secretPath)
		if err != nil {
			sess.Close()
			return fail(fmt.Errorf("server: the cluster secret: %w", err))
		}
		cfg.ClusterToken, full.ClusterToken = secret, secret
		logger.Warn("no -cluster_token: internal routes take the cluster secret kept in ZooKeeper at " + secretPath +
			" (anyone who can read ZooKeeper can read it; set -cluster_token for digest ACLs on the znodes too)")
	}
	em := newElectionMetrics()
	ecfg := election.Config{
		Session: sess,
		Root:    electionRoot,
		ID:      full.ID,
		Address: full.Address,
		Meta:    map[string]string{"api": "v1", "ack": full.Ack, metaIncarnation: full.Incarnation},
		Logger:  logger.With("component", "election"),
		Hooks:   em.hooks(),
	}
	acl := zk.WorldACL(zk.PermAll)
	if userToken {
		ecfg.ACL = election.DigestACL(digestUser, cfg.ClusterToken)
		acl = ecfg.ACL
	}
	cand, err := election.New(ecfg)
	if err != nil {
		sess.Close()
		return fail(err)
	}
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		_ = cand.Close()
		sess.Close()
		return fail(err)
	}
	base := newEpochBase(sess, acl, logger)
	if !userToken {
		// ZooKeeper may lose the secret with the rest of its data: put ours back then, so
		// that the servers still running and the ones that start later share it.
		secret := cfg.ClusterToken
		base.ensure = func() error {
			err := ensureSecret(sess.Conn, secretPath, secret)
			if errors.Is(err, errOtherSecret) {
				logger.Error("the cluster secret in ZooKeeper is not this server's: servers that read it since ZooKeeper lost its data refuse this one, and it refuses them (restart them, or set -cluster_token)",
					"path", secretPath)
				return nil
			}
			return err
		}
	}
	s, err := New(cfg, Deps{Elector: &zkElector{Candidate: cand, sess: sess, base: base}, Store: st,
		InSync: &zkInSync{conn: sess.Conn, path: full.InSyncPath, acl: acl}})
	if err != nil {
		_ = cand.Close()
		sess.Close()
		return fail(err)
	}
	base.fence = s.follower.Fence
	s.goFunc(func() { base.run(s.ctx) })
	if err := em.register(s.metrics.reg); err != nil {
		_ = s.Shutdown(ctx) // not started: closes the candidate and the session
		return fail(err)
	}
	return s, nil
}

// zkElector is a Candidate that also owns its session and the epoch base: its views carry
// the base in their epoch (see epochBase), and Close closes the candidate first (deleting
// its node), then the session.
type zkElector struct {
	*election.Candidate
	sess *election.Session
	base *epochBase
}

func (z *zkElector) View() election.View { return z.base.view(z.Candidate.View()) }

// Observe is the Candidate's Observe with the base applied, sending again whenever the base
// changes or settles (the latest view wins, as the Candidate's).
func (z *zkElector) Observe(ctx context.Context) <-chan election.View {
	in := z.Candidate.Observe(ctx)
	out := make(chan election.View, 1)
	go func() {
		defer close(out)
		var last election.View
		have := false
		for {
			_, _, changed := z.base.get()
			select {
			case v, ok := <-in:
				if !ok {
					return
				}
				last, have = v, true
			case <-changed:
			case <-ctx.Done():
				return
			}
			if !have {
				continue
			}
			v := z.base.view(last)
			select {
			case <-out: // the latest wins
			default:
			}
			out <- v
		}
	}()
	return out
}

func (z *zkElector) Close() error {
	err := z.Candidate.Close()
	z.sess.Close()
	return err
}

func withDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// secretPath is the znode of the cluster secret that guards the internal routes when no
// -cluster_token is given.
const secretPath = "/zkv/secret"

// errOtherSecret: the secret znode holds another secret than this server's.
var errOtherSecret = errors.New("server: another cluster secret")

// ensureSecret creates the secret znode with secret if it is missing (ZooKeeper lost its
// data); a different secret found there is left alone and logged by the caller's errors.
func ensureSecret(conn *zk.Conn, path, secret string) error {
	data, _, err := conn.Get(path)
	switch {
	case err == nil:
		if string(data) != secret {
			return errOtherSecret
		}
		return nil
	case !errors.Is(err, zk.ErrNoNode):
		return err
	}
	if err := ensureParents(conn, path[:strings.LastIndex(path, "/")], zk.WorldACL(zk.PermAll)); err != nil { // see zkInSync
		return err
	}
	if _, err := conn.Create(path, []byte(secret), 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return err
	}
	return nil
}

// clusterSecret reads the cluster secret at path, creating a random one if there is none
// (the first server to start does; the others read it).
func clusterSecret(ctx context.Context, conn *zk.Conn, path string) (string, error) {
	type result struct {
		secret string
		err    error
	}
	ch := make(chan result, 1)
	go func() {
		for attempt := 0; attempt < 3; attempt++ {
			data, _, err := conn.Get(path)
			if err == nil && len(data) >= 16 {
				ch <- result{string(data), nil}
				return
			}
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				ch <- result{"", err}
				return
			}
			var b [32]byte
			_, _ = rand.Read(b[:])
			secret := hex.EncodeToString(b[:])
			if err := ensureParents(conn, path[:strings.LastIndex(path, "/")], zk.WorldACL(zk.PermAll)); err != nil {
				ch <- result{"", err}
				return
			}
			_, err = conn.Create(path, []byte(secret), 0, zk.WorldACL(zk.PermAll))
			if err == nil {
				ch <- result{secret, nil}
				return
			}
			if !errors.Is(err, zk.ErrNodeExists) {
				ch <- result{"", err}
				return
			}
			// Another server created it first: read theirs.
		}
		ch <- result{"", errors.New("the secret znode keeps changing")}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		return r.secret, r.err
	}
}
