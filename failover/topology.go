package failover

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Role is a member's role in the cluster, as Patroni's GET /cluster names it.
type Role string

// Roles of cluster members.
const (
	RoleLeader        Role = "leader"
	RoleStandbyLeader Role = "standby_leader"
	RoleSyncStandby   Role = "sync_standby"
	RoleQuorumStandby Role = "quorum_standby"
	RoleReplica       Role = "replica"
)

// States of a member's PostgreSQL as Patroni reports them (not exhaustive:
// "starting", "stopped", "crashed", "start failed", "restarting", ...).
const (
	StateRunning   = "running"
	StateStreaming = "streaming"
)

// LagUnknown is Member.LagBytes when the manager does not know the lag.
const LagUnknown int64 = -1

// Member is one database node.
type Member struct {
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	State    string `json:"state"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	APIURL   string `json:"api_url,omitempty"`
	Timeline int64  `json:"timeline,omitempty"`
	// LagBytes is the replication lag behind the last known leader
	// position; 0 for the leader, LagUnknown when not known.
	LagBytes int64          `json:"lag_bytes"`
	Tags     map[string]any `json:"tags,omitempty"`
	// NoFailover is true when the member must never be promoted (tag
	// nofailover, or failover_priority 0).
	NoFailover bool `json:"nofailover,omitempty"`
}

// IsLeader reports whether the member holds the leader lock.
func (m Member) IsLeader() bool { return m.Role == RoleLeader || m.Role == RoleStandbyLeader }

// Running reports whether the member's PostgreSQL is up (running, or a
// replica streaming from the leader).
func (m Member) Running() bool { return m.State == StateRunning || m.State == StateStreaming }

// Topology is a snapshot of a cluster.
type Topology struct {
	Cluster string    `json:"cluster,omitempty"`
	Members []Member  `json:"members"`
	Paused  bool      `json:"paused,omitempty"`
	Source  string    `json:"source,omitempty"` // where it was read
	ReadAt  time.Time `json:"read_at"`
}

// Leader returns the member holding the leader lock.
func (t Topology) Leader() (Member, bool) {
	for _, m := range t.Members {
		if m.IsLeader() {
			return m, true
		}
	}
	return Member{}, false
}

// Member returns the member called name.
func (t Topology) Member(name string) (Member, bool) {
	for _, m := range t.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// Replicas returns the members that do not hold the leader lock.
func (t Topology) Replicas() []Member {
	var out []Member
	for _, m := range t.Members {
		if !m.IsLeader() {
			out = append(out, m)
		}
	}
	return out
}

// String is a compact one-line summary for logs: "pg0=leader/running(tl 2)
// pg1=replica/streaming(lag 0)".
func (t Topology) String() string {
	var b strings.Builder
	if t.Paused {
		b.WriteString("paused ")
	}
	for i, m := range t.Members {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s/%s", m.Name, m.Role, m.State)
		switch {
		case m.IsLeader():
			fmt.Fprintf(&b, "(tl %d)", m.Timeline)
		case m.LagBytes == LagUnknown:
			b.WriteString("(lag ?)")
		default:
			fmt.Fprintf(&b, "(lag %d)", m.LagBytes)
		}
	}
	return b.String()
}

// CheckCandidate returns nil when member name may be promoted in t:
// it exists, does not hold the lock, runs, has no nofailover tag, is not
// on an older timeline than the leader, and (when maxLag > 0) its lag is
// known and at most maxLag. The error wraps ErrCandidateIneligible.
func (t Topology) CheckCandidate(name string, maxLag int64) error {
	m, ok := t.Member(name)
	switch {
	case !ok:
		return fmt.Errorf("%w: %q is not a member", ErrCandidateIneligible, name)
	case m.IsLeader():
		return fmt.Errorf("%w: %q already holds the leader lock", ErrCandidateIneligible, name)
	case m.NoFailover:
		return fmt.Errorf("%w: %q is tagged nofailover", ErrCandidateIneligible, name)
	case !m.Running():
		return fmt.Errorf("%w: %q is in state %q", ErrCandidateIneligible, name, m.State)
	}
	if l, ok := t.Leader(); ok && l.Timeline > 0 && m.Timeline > 0 && m.Timeline < l.Timeline {
		return fmt.Errorf("%w: %q is on timeline %d, the leader on %d", ErrCandidateIneligible, name, m.Timeline, l.Timeline)
	}
	if maxLag > 0 {
		if m.LagBytes == LagUnknown {
			return fmt.Errorf("%w: %q has unknown lag", ErrCandidateIneligible, name)
		}
		if m.LagBytes > maxLag {
			return fmt.Errorf("%w: %q lags %d bytes (limit %d)", ErrCandidateIneligible, name, m.LagBytes, maxLag)
		}
	}
	return nil
}

// TagTrue interprets a tag value the way Patroni does for boolean tags:
// true, or a string such as "true", "yes", "on", "1".
func TagTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, err := strconv.ParseBool(strings.ToLower(x))
		if err == nil {
			return b
		}
		return strings.EqualFold(x, "yes") || strings.EqualFold(x, "on")
	case float64:
		return x != 0
	}
	return false
}
