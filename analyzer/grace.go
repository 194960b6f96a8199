package analyzer

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultAbsenceGrace is the default Config.Fleet.AbsenceGrace.
const DefaultAbsenceGrace = 10 * time.Second

// grace holds absence rules back for a while after the analyzer's own
// view of the hosts was interrupted (its NATS connection came back, it
// took over a partition): hosts whose batches could not reach it are not
// absent, and must not page.
type grace struct {
	mu         sync.Mutex
	until      time.Time
	reconnects uint64
	down       bool
}

// start holds absence rules until now+d; it returns false when an
// earlier hold already covers that.
func (g *grace) start(now time.Time, d time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !now.Add(d).After(g.until) {
		return false
	}
	g.until = now.Add(d)
	return true
}

// active reports whether absence rules are held at now.
func (g *grace) active(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down || now.Before(g.until)
}

// watch notes the connection's state: while it is down absence rules are
// held, and a reconnect starts a grace period. It reports whether a new
// grace period started.
func (g *grace) watch(nc *nats.Conn, now time.Time, d time.Duration) bool {
	if nc == nil {
		return false
	}
	rec := nc.Stats().Reconnects
	connected := nc.IsConnected()
	g.mu.Lock()
	changed := rec != g.reconnects
	g.reconnects = rec
	wasDown := g.down
	g.down = !connected
	g.mu.Unlock()
	if changed || (wasDown && connected) {
		return g.start(now, d)
	}
	return false
}

// holdAfterPause starts the absence grace when the analyzer itself did
// not run for a while: gap is the time since the last run of a loop that
// runs every period. A process starved of CPU (or stopped) reads its
// hosts' batches late, and judged on the clock their silence is its own.
func (a *Analyzer) holdAfterPause(gap, period time.Duration) {
	if d := a.cfg.Fleet.AbsenceGrace; d > 0 && gap > 2*period+500*time.Millisecond && a.grace.start(a.cfg.Now(), d) {
		a.fm.graces.Inc()
		a.log.Info("absence rules held: the analyzer did not run for a while", "paused", gap.Round(time.Millisecond), "grace", d)
	}
}
