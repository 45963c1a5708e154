package server

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/replication"
)

// Defaults of Config.
const (
	DefaultHost            = "127.0.0.1"
	DefaultPort            = 5000
	DefaultSessionTimeout  = 4 * time.Second
	DefaultAck             = "all"
	DefaultMaxKeyBytes     = 1024
	DefaultMaxValueBytes   = 1 << 20
	DefaultWriteTimeout    = 5 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultMemberRefresh   = 2 * time.Second
	DefaultSyncTimeout     = 30 * time.Second
	DefaultReplicaLagMax   = time.Second
	DefaultReadTimeout     = 10 * time.Second
	DefaultIdleTimeout     = 90 * time.Second
	DefaultMaxConns        = 4096
	DefaultInSyncPath      = "/zkv/insync"
	DefaultMaxWatchers     = 4096
)

// bodyOverhead is what a JSON body may hold besides the key and the value: braces, field
// names, whitespace.
const bodyOverhead = 4 << 10

// Config configures a Server. The zero value of each field means its default.
type Config struct {
	// Host and Port are where the server listens (-host, -port); default 127.0.0.1:5000.
	// Port 0 picks a free port (tests), then Address is host:picked port.
	Host string
	Port int
	// Listener, when set, is used instead of listening on Host:Port (tests); the server
	// owns it from Start on.
	Listener net.Listener
	// Address is what the other servers and the clients reach this one at, published in
	// the election; default Host:Port (of the Listener when given).
	Address string
	// Pprof serves net/http/pprof under /debug/pprof/ (behind the cluster token when set).
	Pprof bool
	// LogWrites logs every write (applied by the leader, or forwarded to it) at Info; by
	// default those lines are Debug, off the hot path (a line per write cost 9% of a
	// leader's CPU). The driver's scenarios turn it on to show the per-write trail.
	LogWrites bool
	// UnsafeDisableFencing turns the replicas' epoch fence and sender check off. For tests
	// only: the robustness suite uses it to show that its checks catch a deposed leader's
	// writes.
	UnsafeDisableFencing bool
	// ID names this server in the cluster; default Address.
	ID string
	// ZooKeeper is the ensemble, "host:port" each; used by Open only.
	ZooKeeper []string
	// SessionTimeout is the ZooKeeper session timeout asked for; default 4s. Open only.
	SessionTimeout time.Duration
	// ClusterToken, when set, guards the internal routes (Authorization: Bearer) and, in
	// Open, puts digest ACLs on the election's znodes.
	ClusterToken string
	// Ack is when a write is acknowledged: "all" (default), "majority" or "leader".
	Ack string
	// MaxKeyBytes and MaxValueBytes bound keys and values; default 1024 and 1 MiB.
	MaxKeyBytes   int
	MaxValueBytes int
	// QuotaBytes bounds the store's keys and values (kvstore.Size): the leader refuses a
	// write that would grow them past it (413 quota_exceeded); reads, deletes and writes
	// that do not grow the store still work. Default DefaultQuotaBytes (2 GiB); negative:
	// no quota.
	QuotaBytes int64
	// SyncOnJoin makes the server copy the leader's store before it reports ready; by
	// default a (re)started server starts empty and takes only later writes.
	SyncOnJoin bool
	// WriteTimeout bounds a leader's wait for acknowledgements; default 5s. Forwarded
	// requests get WriteTimeout plus 2s.
	WriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop Run does when its ctx ends; default 10s.
	ShutdownTimeout time.Duration
	// MemberRefresh is how often a leader re-reads the members for its replica set (it
	// also does on every view change); default 2s.
	MemberRefresh time.Duration
	// ReplicaLagMax is how long an in-sync replica may fail to catch up with the leader
	// (unreachable, killed, slow) before the leader drops it from the in-sync set, so that
	// writes stop waiting for it (Kafka's replica.lag.time.max.ms); default 1s. It rejoins
	// once it has caught up.
	ReplicaLagMax time.Duration
	// ReadTimeout bounds the reading of a request, headers and body: a client that trickles
	// its body is cut after it; default 10s. IdleTimeout closes idle keep-alive connections;
	// default 90s. MaxConns caps the open client connections (more wait in the kernel's
	// backlog); default 4096, negative: no cap.
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	MaxConns    int
	// SilentAfter: a follower whose leader's stream has been silent this long answers
	// /readyz with 503 (its local reads still work, saying how stale they may be); default
	// 3s, three of the leader's heartbeats.
	SilentAfter time.Duration
	// MinInSync is the smallest in-sync set (the leader included) the leader shrinks it to
	// (Kafka's min.insync.replicas): with 2, a write is never acknowledged on one server
	// alone once the set has had two members; writes then wait for a replica to catch up
	// instead. Default 1: writes go on while the leader alone is in sync.
	MinInSync int
	// UncleanAfter is how long a newly elected leader waits, when too few members of the
	// in-sync set are still registered to tell it every committed write, before it leads
	// with what it can reach (an unclean leadership: writes only the missing members held
	// are lost; logged and counted). Default 2 x SessionTimeout; negative: never.
	UncleanAfter time.Duration
	// MaxWatchers caps the requests blocked in a watch (?index=) at once on this server;
	// past it a watch answers 503 too_many_watchers. Default 4096.
	MaxWatchers int
	// InSyncPath is the znode that records the in-sync set; default /zkv/insync.
	InSyncPath string
	// Incarnation names this server process in the in-sync set; default random. A
	// restarted server is a new incarnation: it starts empty and is not in sync.
	Incarnation string
	// TLSCert and TLSKey (-tls_cert, -tls_key: PEM files) turn TLS on for the one
	// listener (clients and peers) and make this server's own requests to its peers use
	// https, presenting that certificate. TLSCA (-tls_ca), a PEM file of CA certificates,
	// is what peers' certificates are verified against (default: the system's roots); with
	// it the internal routes also require a client certificate it signed. Every server of
	// a cluster uses TLS or none: the address in ZooKeeper stays host:port.
	TLSCert string
	TLSKey  string
	TLSCA   string
	// MaxSnapshotJSONBytes caps a snapshot that arrives as one JSON document, the format of
	// the releases before snapshot streams (a stream is bounded per entry and by the
	// quota instead); default replication.DefaultMaxSnapshotBytes (1 GiB).
	MaxSnapshotJSONBytes int64
	// Replication tunes the leader's fan-out (timeouts, retries, batching); Self, Epoch,
	// Log, Snapshot, Token, Observer and Logger are set by the server.
	Replication replication.Config
	// Logger receives the server's records; discarded when nil.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.Ack == "" {
		c.Ack = DefaultAck
	}
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MemberRefresh == 0 {
		c.MemberRefresh = DefaultMemberRefresh
	}
	if c.ReplicaLagMax == 0 {
		c.ReplicaLagMax = DefaultReplicaLagMax
	}
	if c.MinInSync == 0 {
		c.MinInSync = 1
	}
	if c.SilentAfter == 0 {
		c.SilentAfter = 3 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.UncleanAfter == 0 {
		c.UncleanAfter = 2 * c.SessionTimeout
	}
	if c.QuotaBytes == 0 {
		c.QuotaBytes = DefaultQuotaBytes
	}
	if c.InSyncPath == "" {
		c.InSyncPath = DefaultInSyncPath
	}
	if c.MaxWatchers == 0 {
		c.MaxWatchers = DefaultMaxWatchers
	}
	if c.Address == "" {
		if c.Port != 0 {
			c.Address = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
		} else if c.Listener != nil {
			c.Address = c.Listener.Addr().String()
		}
	}
	if c.ID == "" {
		c.ID = c.Address
	}
	return c
}

// Validate reports whether the config (after defaults) is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := replication.ParseAckMode(c.Ack); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("%w: port %d out of range", ErrInvalidConfig, c.Port)
	case c.MaxKeyBytes < 1:
		return fmt.Errorf("%w: max_key_bytes %d must be positive", ErrInvalidConfig, c.MaxKeyBytes)
	case c.MaxValueBytes < 0:
		return fmt.Errorf("%w: max_value_bytes %d must not be negative", ErrInvalidConfig, c.MaxValueBytes)
	case c.SessionTimeout < 0, c.WriteTimeout < 0, c.ShutdownTimeout < 0, c.MemberRefresh < 0, c.ReplicaLagMax < 0,
		c.ReadTimeout < 0, c.IdleTimeout < 0:
		return fmt.Errorf("%w: timeouts must not be negative", ErrInvalidConfig)
	case c.MaxWatchers < 0:
		return fmt.Errorf("%w: max_watchers %d must not be negative", ErrInvalidConfig, c.MaxWatchers)
	case c.MinInSync < 1:
		return fmt.Errorf("%w: min_insync %d must be at least 1", ErrInvalidConfig, c.MinInSync)
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return fmt.Errorf("%w: tls_cert and tls_key go together", ErrInvalidConfig)
	case c.TLSCA != "" && c.TLSCert == "":
		return fmt.Errorf("%w: tls_ca needs tls_cert and tls_key", ErrInvalidConfig)
	case c.InSyncPath[0] != '/' || strings.HasSuffix(c.InSyncPath, "/"):
		return fmt.Errorf("%w: in-sync path %q must be an absolute znode path", ErrInvalidConfig, c.InSyncPath)
	}
	return nil
}

// ackMode is Ack parsed; Validate has checked it.
func (c Config) ackMode() replication.AckMode {
	m, _ := replication.ParseAckMode(c.Ack)
	return m
}

// bodyLimit caps a request body before it is read: a value and a key, each possibly
// JSON-escaped (\u00XX is six bytes for one), plus the object around them.
// appendLimit caps an append's (and a catch-up batch's) body: a batch carries up to the
// fan-out's MaxBatchBytes of keys and values, plus one entry past it, each byte escaped
// to at most 6 in JSON; never below replication's default.
func (c Config) appendLimit() int64 {
	batch := c.Replication.MaxBatchBytes
	if batch <= 0 {
		batch = replication.DefaultMaxBatchBytes
	}
	return max(int64(replication.DefaultMaxAppendBytes),
		6*(batch+int64(c.MaxValueBytes)+int64(c.MaxKeyBytes))+1<<20)
}

func (c Config) bodyLimit() int64 {
	return 6*int64(c.MaxValueBytes) + 6*int64(c.MaxKeyBytes) + bodyOverhead
}
