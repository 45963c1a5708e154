package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zkv-dev/zkv/kvstore"
)

// DefaultQuotaBytes is Config.QuotaBytes' default: 2 GiB of keys and values, etcd's
// default --quota-backend-bytes.
const DefaultQuotaBytes = 2 << 30

// AlarmNoSpace is the alarm /v1/status lists while writes are refused for the quota.
const AlarmNoSpace = "NOSPACE"

// storeBytes is the size of this server's store as kvstore.Size counts it.
func (s *Server) storeBytes() int64 {
	if b, ok := s.store.(interface{ Bytes() int64 }); ok {
		return b.Bytes()
	}
	var n int64
	for _, e := range s.store.Snapshot().Entries {
		n += kvstore.Size(e)
	}
	return n
}

// projectedBytes is the size of the state after every logged entry: the store plus, for
// each pending key, its logged entry in place of the store's. A new leader starts its count
// from it before it takes writes, while its store is still: nothing commits before its
// epoch's no-op, which it enqueues later. Its writes then move the count under writeMu.
func (s *Server) projectedBytes() int64 {
	n := s.storeBytes()
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for k, e := range s.pending {
		old, _ := s.store.Lookup(k)
		n += kvstore.Size(e) - kvstore.Size(old)
	}
	return n
}

// checkQuota refuses (413 quota_exceeded) an entry that would grow the state it applies on
// past the quota. A write that does not grow it (a delete, a shorter value) always passes.
// Under writeMu.
func (s *Server) checkQuota(ld *leadership, old, e kvstore.Entry) error {
	q := s.cfg.QuotaBytes
	delta := kvstore.Size(e) - kvstore.Size(old)
	if q <= 0 || delta <= 0 {
		return nil
	}
	if used := ld.projected + delta; used > q {
		s.noSpace.Store(true)
		err := newAPIError(http.StatusRequestEntityTooLarge, CodeQuotaExceeded,
			"the store would hold %d bytes of keys and values, above its quota of %d (-quota_bytes); nothing changed: delete keys or shorten values first",
			used, q)
		err.used, err.quota = used, q
		return err
	}
	return nil
}

// countLogged moves the leader's count by a logged entry. Under writeMu.
func (s *Server) countLogged(ld *leadership, old, e kvstore.Entry) {
	delta := kvstore.Size(e) - kvstore.Size(old)
	ld.projected += delta
	if delta > 0 {
		s.noSpace.Store(false) // a growing write fits again
	}
}

// alarms lists this server's alarms for /v1/status: NOSPACE while its store is at its
// quota, or, on the leader, since it refused a write for the quota until a growing write
// fits again.
func (s *Server) alarms() []string {
	out := []string{}
	q := s.cfg.QuotaBytes
	if q > 0 && (s.storeBytes() >= q || s.leading() && s.noSpace.Load()) {
		out = append(out, AlarmNoSpace)
	}
	return out
}

func (s *Server) registerQuotaMetrics() {
	s.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "zkv_store_bytes", Help: "Bytes of keys and values in this server's store (live entries), as -quota_bytes counts them.",
		}, func() float64 { return float64(s.storeBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "zkv_quota_bytes", Help: "The store's quota (-quota_bytes); 0: none.",
		}, func() float64 { return float64(max(s.cfg.QuotaBytes, 0)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "zkv_alarm_nospace", Help: "1 while /v1/status lists the NOSPACE alarm: writes that grow the store are refused for the quota.",
		}, func() float64 {
			if len(s.alarms()) > 0 {
				return 1
			}
			return 0
		}),
	)
}
