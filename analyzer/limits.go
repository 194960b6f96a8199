package analyzer

import (
	"maps"
	"time"

	"github.com/mciv/mciv/analyzer/eval"
)

// Limits caps what one host can make the analyzer hold, so that a host
// that sends thousands of distinct label values (a bug, or an attacker
// with a host's credentials) costs a bounded amount of memory and does
// not crowd out the other hosts.
type Limits struct {
	// MaxSeriesPerHost caps the distinct series of one host that the rules
	// watch (eval.Options.MaxSeriesPerHost); zero means
	// eval.DefaultMaxSeriesPerHost, negative none.
	MaxSeriesPerHost int
	// MaxGroupsPerHost caps the alert groups of one host over every rule;
	// zero means eval.DefaultMaxGroupsPerHost, negative none.
	MaxGroupsPerHost int
	// LogInterval is how often a host over a cap is logged (once per
	// host per interval, with what was refused meanwhile); zero means 1m.
	LogInterval time.Duration
}

// expireEvery is how often Tick forgets silent, idle hosts.
const expireEvery = time.Minute

// evalOptions are the rules engine's options for c.
func (c Config) evalOptions() eval.Options {
	return eval.Options{
		GroupIdleTTL:     c.GroupIdleTTL,
		MaxSeriesPerHost: c.Limits.MaxSeriesPerHost,
		MaxGroupsPerHost: c.Limits.MaxGroupsPerHost,
	}
}

// refused counts the series of one host refused by a cap and logs them,
// once per host per LogInterval, naming the host.
func (a *Analyzer) refused(cluster, host string, counts map[string]int, now time.Time) {
	for reason, n := range counts {
		a.m.seriesRefused.WithLabelValues(cluster, host, reason).Add(float64(n))
	}
	every := a.cfg.Limits.LogInterval
	if every <= 0 {
		every = time.Minute
	}
	k := [2]string{cluster, host}
	a.limMu.Lock()
	r, ok := a.refusedLog[k]
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	for reason, n := range counts {
		r.counts[reason] += n
	}
	logNow := !ok || now.Sub(r.logged) >= every
	var total map[string]int
	if logNow {
		total = maps.Clone(r.counts)
		r.logged, r.counts = now, nil
	}
	a.refusedLog[k] = r
	a.limMu.Unlock()
	if logNow {
		a.log.Warn("host over its cap: new series refused, its other series still evaluated",
			"cluster", cluster, "host", host, "refused", total,
			"max_series_per_host", capOf(a.cfg.Limits.MaxSeriesPerHost, eval.DefaultMaxSeriesPerHost),
			"max_groups_per_host", capOf(a.cfg.Limits.MaxGroupsPerHost, eval.DefaultMaxGroupsPerHost),
			"log_interval", every)
	}
}

// capOf is the cap the engine applies for option v (0: none).
func capOf(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// expire forgets, at most every expireEvery, the hosts that went silent
// for the group idle TTL with no pending or firing alert, and their
// refusal series.
func (a *Analyzer) expire(now time.Time) {
	a.limMu.Lock()
	due := now.Sub(a.lastExpire) >= expireEvery
	if due {
		a.lastExpire = now
	}
	a.limMu.Unlock()
	if !due {
		return
	}
	a.mu.Lock()
	gone := a.engine.Expire(now)
	a.m.hosts.Set(float64(a.engine.Hosts()))
	a.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	a.limMu.Lock()
	for _, k := range gone {
		delete(a.refusedLog, k)
	}
	a.limMu.Unlock()
	for _, k := range gone {
		for _, reason := range eval.RefuseReasons() {
			a.m.seriesRefused.DeleteLabelValues(k[0], k[1], reason)
		}
	}
	a.log.Info("forgot hosts silent and idle", "hosts", len(gone), "idle_ttl", a.idleTTL())
}

// idleTTL is the group idle TTL in effect.
func (a *Analyzer) idleTTL() time.Duration {
	if a.cfg.GroupIdleTTL > 0 {
		return a.cfg.GroupIdleTTL
	}
	return eval.DefaultGroupIdleTTL
}
