package robustness

import (
	"context"
	"fmt"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Links is an in-process toxiproxy: one named proxy per link, all listening on 127.0.0.1.
type Links struct {
	server *toxiproxy.ApiServer
	mu     sync.Mutex
	byName map[string]*toxiproxy.Proxy
}

func newLinks() *Links {
	zerolog.SetGlobalLevel(zerolog.Disabled) // toxics log through the global logger
	return &Links{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()), byName: map[string]*toxiproxy.Proxy{}}
}

// Add starts a proxy called name on a free loopback port towards upstream; it returns the
// proxy's address.
func (l *Links) Add(name, upstream string) (string, error) {
	p := toxiproxy.NewProxy(l.server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("robustness: proxy %s: %w", name, err)
	}
	l.mu.Lock()
	l.byName[name] = p
	l.mu.Unlock()
	return p.Listen, nil
}

// Names lists the proxies whose names start with prefix.
func (l *Links) Names(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n := range l.byName {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// Toxic adds a toxic of type typ to both directions of the named proxies, e.g.
// Toxic("latency", 1, `"latency":100,"jitter":100`, names...).
func (l *Links) Toxic(typ string, toxicity float64, attributes string, names ...string) error {
	for _, name := range names {
		l.mu.Lock()
		p := l.byName[name]
		l.mu.Unlock()
		if p == nil {
			return fmt.Errorf("robustness: no proxy %s", name)
		}
		for _, stream := range []string{"upstream", "downstream"} {
			js := fmt.Sprintf(`{"name":"%s_%s","type":%q,"stream":%q,"toxicity":%g,"attributes":{%s}}`, typ, stream, typ, stream, toxicity, attributes)
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				return fmt.Errorf("robustness: toxic %s on %s: %w", typ, name, err)
			}
		}
	}
	return nil
}

// Heal removes every toxic from every proxy.
func (l *Links) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.byName {
		p.Toxics.ResetToxics(context.Background())
	}
}

// Close stops every proxy.
func (l *Links) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.byName {
		p.Stop()
	}
	l.byName = map[string]*toxiproxy.Proxy{}
}
