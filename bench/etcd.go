package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdCluster is a 3-member etcd on loopback, started from Debian's etcd-server package.
type etcdCluster struct {
	procs     []*proc
	endpoints []string
	clients   []*clientv3.Client // one per endpoint; worker w uses clients[w%len]
	Version   string
}

// startEtcd starts members etcd members with their data in dataDir (tmpfs when the caller
// passes one) and returns once every member answers and a put succeeds.
func startEtcd(ctx context.Context, members int, dataDir, logDir string) (*etcdCluster, error) {
	bin, err := lookBinary("etcd", "etcd-server")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * members)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range members {
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, hostPort(ports[2*i+1])))
	}
	c := &etcdCluster{}
	for i := range members {
		client, peer := "http://"+hostPort(ports[2*i]), "http://"+hostPort(ports[2*i+1])
		p, err := startProc(fmt.Sprintf("etcd-%d", i), logDir, bin,
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(dataDir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", "zkv-bench", "--initial-cluster-state", "new",
			"--logger", "zap", "--log-level", "warn")
		if err != nil {
			c.Close()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.endpoints = append(c.endpoints, hostPort(ports[2*i]))
	}
	for _, ep := range c.endpoints {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{ep},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("bench: etcd client: %w", err)
		}
		c.clients = append(c.clients, cli)
	}
	for i, cli := range c.clients {
		err := waitFor(ctx, 60*time.Second, "etcd ready", func(ctx context.Context) error {
			st, err := cli.Status(ctx, c.endpoints[i])
			if err != nil {
				return err
			}
			if st.Leader == 0 {
				return fmt.Errorf("no leader yet")
			}
			c.Version = st.Version
			_, err = cli.Put(ctx, "zkv-bench-ready", "1")
			return err
		}, c.procs...)
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *etcdCluster) client(w int) *clientv3.Client { return c.clients[w%len(c.clients)] }

func (c *etcdCluster) put(keys []string, value string) Op {
	return func(ctx context.Context, w int, seq uint64) error {
		_, err := c.client(w).Put(ctx, pickKey(keys, w, seq), value)
		return err
	}
}

func (c *etcdCluster) get(keys []string, serializable bool) Op {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return func(ctx context.Context, w int, seq uint64) error {
		r, err := c.client(w).Get(ctx, pickKey(keys, w, seq), opts...)
		if err == nil && len(r.Kvs) == 0 {
			return fmt.Errorf("bench: etcd: key missing")
		}
		return err
	}
}

// Close stops the members and the clients; idempotent.
func (c *etcdCluster) Close() {
	for _, cli := range c.clients {
		_ = cli.Close()
	}
	c.clients = nil
	for _, p := range c.procs {
		p.stop(5 * time.Second)
	}
}
