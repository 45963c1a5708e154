package bench

import (
	"fmt"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// latencyProxy is an in-process toxiproxy in front of each ZooKeeper node: every byte between a
// zkv server and ZooKeeper waits the one-way latency (plus or minus jitter) in each direction,
// as between a server and a ZooKeeper in another region.
type latencyProxy struct {
	proxies []*toxiproxy.Proxy
	addrs   []string
}

// newLatencyProxy starts one proxy on 127.0.0.1 per upstream "h:p" with latency and jitter added
// in both directions (so a round trip costs about twice latency).
func newLatencyProxy(upstreams []string, latency, jitter time.Duration) (*latencyProxy, error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	lp := &latencyProxy{}
	for i, up := range upstreams {
		p := toxiproxy.NewProxy(server, fmt.Sprintf("zookeeper-%d", i), "127.0.0.1:0", up)
		if err := p.Start(); err != nil {
			lp.Close()
			return nil, fmt.Errorf("bench: toxiproxy: %w", err)
		}
		lp.proxies = append(lp.proxies, p)
		lp.addrs = append(lp.addrs, p.Listen)
		for _, stream := range []string{"upstream", "downstream"} {
			toxic := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`,
				stream, stream, latency.Milliseconds(), jitter.Milliseconds())
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
				lp.Close()
				return nil, fmt.Errorf("bench: toxiproxy latency: %w", err)
			}
		}
	}
	return lp, nil
}

// Addrs are the proxies' listen addresses, in the order of the upstreams.
func (lp *latencyProxy) Addrs() []string { return lp.addrs }

// Close stops every proxy and its connections.
func (lp *latencyProxy) Close() {
	for _, p := range lp.proxies {
		p.Stop()
	}
	lp.proxies = nil
}
