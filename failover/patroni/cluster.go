package patroni

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/mciv/mciv/failover"
)

// clusterJSON is the body of GET /cluster (patroni.utils.cluster_as_json).
type clusterJSON struct {
	Scope   string       `json:"scope"`
	Members []memberJSON `json:"members"`
	Pause   bool         `json:"pause"`
}

type memberJSON struct {
	Name     string          `json:"name"`
	Role     string          `json:"role"`
	State    string          `json:"state"`
	APIURL   string          `json:"api_url"`
	Host     string          `json:"host"`
	Port     int             `json:"port"`
	Timeline int64           `json:"timeline"`
	Lag      json.RawMessage `json:"lag"` // bytes, or "unknown"
	Tags     map[string]any  `json:"tags"`
}

// parseCluster decodes a GET /cluster body into a Topology.
func parseCluster(body []byte) (failover.Topology, error) {
	var c clusterJSON
	if err := json.Unmarshal(body, &c); err != nil {
		return failover.Topology{}, fmt.Errorf("decode /cluster: %w", err)
	}
	t := failover.Topology{Cluster: c.Scope, Paused: c.Pause, Members: make([]failover.Member, 0, len(c.Members))}
	for _, m := range c.Members {
		if m.Name == "" {
			return failover.Topology{}, fmt.Errorf("decode /cluster: a member has no name")
		}
		role := failover.Role(m.Role)
		if role == "master" || role == "primary" { // older and newer spellings
			role = failover.RoleLeader
		}
		fm := failover.Member{
			Name: m.Name, Role: role, State: m.State, Host: m.Host, Port: m.Port,
			APIURL: m.APIURL, Timeline: m.Timeline, Tags: m.Tags,
			LagBytes: parseLag(m.Lag, role),
		}
		fm.NoFailover = noFailover(m.Tags)
		t.Members = append(t.Members, fm)
	}
	return t, nil
}

func parseLag(raw json.RawMessage, role failover.Role) int64 {
	if len(raw) == 0 {
		if role == failover.RoleLeader || role == failover.RoleStandbyLeader {
			return 0
		}
		return failover.LagUnknown
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return failover.LagUnknown // "unknown"
	}
	v, err := n.Int64()
	if err != nil || v < 0 {
		return failover.LagUnknown
	}
	return v
}

// noFailover follows Patroni: nofailover true, or failover_priority <= 0
// when nofailover is absent.
func noFailover(tags map[string]any) bool {
	if v, ok := tags["nofailover"]; ok {
		return failover.TagTrue(v)
	}
	if v, ok := tags["failover_priority"]; ok {
		if f, ok := v.(float64); ok {
			return f <= 0
		}
	}
	return false
}

// apiBase turns a member's api_url ("http://10.0.0.1:8008/patroni") into the
// base URL of its REST API.
func apiBase(apiURL string) (string, error) {
	u, err := url.Parse(apiURL)
	if err != nil {
		return "", fmt.Errorf("parse api_url %q: %w", apiURL, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("api_url %q has no scheme or host", apiURL)
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/patroni")
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return strings.TrimRight(u.String(), "/"), nil
}
