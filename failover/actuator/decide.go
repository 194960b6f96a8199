package actuator

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/wire"
)

// Safeguard names the check that decided, as written to wire.Action.
type Safeguard string

// Safeguards, in the order they are checked.
const (
	GuardPause       Safeguard = "global_pause"
	GuardCutOff      Safeguard = "cut_off"
	GuardPersistence Safeguard = "persistence"
	GuardTopology    Safeguard = "topology"
	GuardPatroniStop Safeguard = "patroni_pause"
	GuardPrimary     Safeguard = "only_primary"
	GuardNotSpecific Safeguard = "not_primary_specific"
	GuardVantage     Safeguard = "vantage"
	GuardCandidate   Safeguard = "candidate"
	GuardCooldown    Safeguard = "cooldown"
	GuardApproval    Safeguard = "approval"
	GuardLease       Safeguard = "lease"
	GuardDriver      Safeguard = "driver"
)

// view is everything one decision looks at, gathered before evaluate.
type view struct {
	now    time.Time
	alert  *wire.Alert
	top    failover.Topology
	seen   []string               // hosts of the cluster seen recently
	firing map[string]string      // host → rule of an alert firing on it
	toward map[string]Degradation // host → its degraded view of the primary
	own    map[string]int         // host → its degraded views of other peers
}

// plan is a decision to act.
type plan struct {
	Cluster  string
	From, To string // Patroni member names
	FromHost string
	ToHost   string
	Vantage  []string // who agreed
	Evidence map[string]string
}

// refusal is a decision not to act.
type refusal struct {
	Guard  Safeguard
	Detail string
}

func (r *refusal) Error() string { return string(r.Guard) + ": " + r.Detail }

func refuse(g Safeguard, format string, args ...any) *refusal {
	return &refusal{Guard: g, Detail: fmt.Sprintf(format, args...)}
}

// evaluate applies the safeguards that need no I/O, in order, and returns a
// plan or the first refusal. The evidence map is filled either way.
func evaluate(cfg *Config, v view, ev map[string]string) (plan, *refusal) {
	a := v.alert
	cluster := a.Labels["cluster"]
	host := a.Labels["host"]
	p := plan{Cluster: cluster, FromHost: host, From: cfg.member(host), Evidence: ev}
	ev["seen_hosts"] = strings.Join(v.seen, ",")
	ev["alert_for"] = v.now.Sub(a.StartsAt).Round(time.Millisecond).String()

	if len(v.seen) == 0 {
		return p, refuse(GuardCutOff, "no sample batch from any host of %s in the last %s: the analyzer is probably the one cut off", cluster, cfg.SeenWindow.D())
	}
	if held := v.now.Sub(a.StartsAt); held < cfg.Persist.D() {
		return p, refuse(GuardPersistence, "the alert has fired for %s, less than the required %s", held.Round(time.Millisecond), cfg.Persist.D())
	}
	ev["topology"] = v.top.String()
	if v.top.Paused {
		return p, refuse(GuardPatroniStop, "Patroni reports the cluster paused (maintenance mode)")
	}
	leader, ok := v.top.Leader()
	if !ok {
		return p, refuse(GuardPrimary, "Patroni reports no leader; Patroni's own failover is in charge")
	}
	if leader.Name != p.From {
		return p, refuse(GuardPrimary, "the alert is about %s, but the primary is %s", host, leader.Name)
	}

	// Not primary-specific: every other host seen has its own alert firing.
	others, othersFiring := 0, 0
	for _, h := range v.seen {
		if h == host {
			continue
		}
		others++
		if _, ok := v.firing[h]; ok {
			othersFiring++
		}
	}
	if others > 0 && othersFiring == others {
		return p, refuse(GuardNotSpecific, "every other host (%d) has an alert firing too: a cluster-wide load, not a sick primary", others)
	}

	// Vantage points other than the primary itself.
	addr := joinHostPort(leader.Host, leader.Port)
	ev["primary_addr"] = addr
	var agree []string
	for h, d := range v.toward {
		if h == host || d.Batches < cfg.MinDegradedBatches {
			continue
		}
		agree = append(agree, h)
		ev["vantage."+h] = fmt.Sprintf("%s max %g in %d batches", d.Signal, d.Max, d.Batches)
	}
	sort.Strings(agree)
	if *cfg.PatroniView {
		if why := patroniSaysSick(v.top, leader, cfg.PatroniLagBytes); why != "" {
			agree = append(agree, "patroni")
			ev["vantage.patroni"] = why
		}
	}
	p.Vantage = agree
	if len(agree) < max(cfg.MinVantage, 1) {
		return p, refuse(GuardVantage, "only %d vantage point(s) other than %s see it degraded (%s), %d required",
			len(agree), host, orNone(agree), cfg.MinVantage)
	}

	// Candidate: eligible by Patroni, within lag, seen, healthy by its own signals.
	seen := map[string]bool{}
	for _, h := range v.seen {
		seen[h] = true
	}
	var reasons []string
	type cand struct {
		m    failover.Member
		host string
	}
	var cands []cand
	for _, m := range v.top.Replicas() {
		h := cfg.host(m.Name)
		if err := v.top.CheckCandidate(m.Name, cfg.MaxLagBytes); err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if !seen[h] {
			reasons = append(reasons, fmt.Sprintf("%s: no recent sample batch", h))
			continue
		}
		if r, ok := v.firing[h]; ok {
			reasons = append(reasons, fmt.Sprintf("%s: alert %s firing on it", h, r))
			continue
		}
		if n := v.own[h]; n >= cfg.MinDegradedBatches {
			reasons = append(reasons, fmt.Sprintf("%s: degraded towards other peers in %d batches", h, n))
			continue
		}
		cands = append(cands, cand{m, h})
	}
	if len(cands) == 0 {
		return p, refuse(GuardCandidate, "no healthy candidate: %s", strings.Join(reasons, "; "))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].m.LagBytes != cands[j].m.LagBytes {
			return cands[i].m.LagBytes < cands[j].m.LagBytes
		}
		return cands[i].m.Name < cands[j].m.Name
	})
	p.To, p.ToHost = cands[0].m.Name, cands[0].host
	ev["candidate_lag_bytes"] = strconv.FormatInt(cands[0].m.LagBytes, 10)
	return p, nil
}

// patroniSaysSick returns why Patroni's view shows the primary sick, or "".
func patroniSaysSick(t failover.Topology, leader failover.Member, lagLimit int64) string {
	if !leader.Running() {
		return fmt.Sprintf("Patroni reports the primary %s in state %q", leader.Name, leader.State)
	}
	reps := t.Replicas()
	if len(reps) == 0 {
		return ""
	}
	for _, r := range reps {
		if r.LagBytes != failover.LagUnknown && r.LagBytes < lagLimit {
			return ""
		}
	}
	return fmt.Sprintf("every replica lags %d bytes or more (or unknown) behind %s", lagLimit, leader.Name)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// describe renders the alert for a reason: "p99 latency 12x baseline for 20 s".
func describe(a *wire.Alert, now time.Time) string {
	what := strings.TrimSpace(a.Stat + " " + a.Signal)
	if what == "" {
		what = a.Rule
	}
	var val string
	switch {
	case a.Baseline > 0:
		val = fmt.Sprintf("%.3gx baseline", a.Value/a.Baseline)
	default:
		val = fmt.Sprintf("%.3g (threshold %.3g)", a.Value, a.Threshold)
	}
	return fmt.Sprintf("%s %s for %s", what, val, now.Sub(a.StartsAt).Round(time.Second))
}

// joinAnd renders "a", "a and b", "a, b and c".
func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return "nobody"
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
