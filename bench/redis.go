package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisGroup is a Redis primary with replicas on loopback, from Debian's redis-server package,
// without persistence (as zkv keeps its store in memory).
type redisGroup struct {
	procs    []*proc
	primary  *redis.Client
	replicas []*redis.Client
	Version  string
}

func startRedis(ctx context.Context, replicas, poolSize int, dir, logDir string) (*redisGroup, error) {
	bin, err := lookBinary("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1 + replicas)
	if err != nil {
		return nil, err
	}
	g := &redisGroup{}
	for i, port := range ports {
		args := []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--dir", dir, "--daemonize", "no", "--dbfilename", fmt.Sprintf("dump-%d.rdb", port)}
		if i > 0 {
			args = append(args, "--replicaof", "127.0.0.1", fmt.Sprint(ports[0]))
		}
		p, err := startProc(fmt.Sprintf("redis-%d", i), logDir, bin, args...)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.procs = append(g.procs, p)
		cli := redis.NewClient(&redis.Options{Addr: hostPort(port), PoolSize: poolSize, DisableIdentity: true})
		if i == 0 {
			g.primary = cli
		} else {
			g.replicas = append(g.replicas, cli)
		}
	}
	err = waitFor(ctx, 30*time.Second, "redis replication", func(ctx context.Context) error {
		info, err := g.primary.Info(ctx, "replication", "server").Result()
		if err != nil {
			return err
		}
		g.Version = infoField(info, "redis_version")
		if got := infoField(info, "connected_slaves"); got != fmt.Sprint(replicas) {
			return fmt.Errorf("%s of %d replicas connected", got, replicas)
		}
		for _, r := range g.replicas {
			info, err := r.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if infoField(info, "master_link_status") != "up" {
				return fmt.Errorf("replica link down")
			}
		}
		return nil
	}, g.procs...)
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// setWait is SET then WAIT for every replica, pipelined in one round trip: the parity of zkv's
// ack all.
func (g *redisGroup) setWait(keys []string, value string) Op {
	n := len(g.replicas)
	return func(ctx context.Context, w int, seq uint64) error {
		pipe := g.primary.Pipeline()
		pipe.Set(ctx, pickKey(keys, w, seq), value, 0)
		wait := pipe.Do(ctx, "WAIT", n, 5000)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		if got, err := wait.Int64(); err != nil || got < int64(n) {
			return fmt.Errorf("bench: redis: WAIT saw %d of %d replicas (%v)", got, n, err)
		}
		return nil
	}
}

// set is SET on the primary, for preloading.
func (g *redisGroup) set(ctx context.Context, key, value string) error {
	return g.primary.Set(ctx, key, value, 0).Err()
}

// getReplica is GET from replica w%replicas.
func (g *redisGroup) getReplica(keys []string) Op {
	return func(ctx context.Context, w int, seq uint64) error {
		err := g.replicas[w%len(g.replicas)].Get(ctx, pickKey(keys, w, seq)).Err()
		if err == redis.Nil {
			return fmt.Errorf("bench: redis: key missing on replica")
		}
		return err
	}
}

// Close stops the clients and the servers; idempotent.
func (g *redisGroup) Close() {
	for _, c := range append([]*redis.Client{g.primary}, g.replicas...) {
		if c != nil {
			_ = c.Close()
		}
	}
	g.primary, g.replicas = nil, nil
	for _, p := range g.procs {
		p.stop(5 * time.Second)
	}
}
