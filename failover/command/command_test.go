package command

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/webhook"
)

// script writes an executable shell script that first records each run
// (stdin and environment) in dir.
func script(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "act.sh")
	s := "#!/bin/sh\ncat > \"" + dir + "/stdin.$$\"\nenv | grep '^MCIV_' | sort > \"" + dir + "/env.$$\"\n" + body + "\n"
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func runs(t *testing.T, dir string) (stdin []webhook.Payload, env []string) {
	t.Helper()
	ins, _ := filepath.Glob(filepath.Join(dir, "stdin.*"))
	for _, f := range ins {
		b, _ := os.ReadFile(f)
		var p webhook.Payload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("stdin %s: %v", b, err)
		}
		stdin = append(stdin, p)
	}
	envs, _ := filepath.Glob(filepath.Join(dir, "env.*"))
	for _, f := range envs {
		b, _ := os.ReadFile(f)
		env = append(env, string(b))
	}
	return stdin, env
}

var req = failover.Request{Cluster: "c1", From: "a", To: "b", FencingToken: 5, Reason: "why"}

func TestCommandExitCodes(t *testing.T) {
	requireSh(t)
	tests := []struct {
		name    string
		body    string
		want    error
		outcome failover.Outcome
		leader  string
	}{
		{"done", `echo '{"new_leader":"b","detail":"ok"}'`, nil, failover.OutcomeSucceeded, "b"},
		{"done, other leader", `echo '{"new_leader":"c"}'`, failover.ErrUnexpectedLeader, failover.OutcomeOtherLeader, "c"},
		{"refused", `echo busy >&2; exit 2`, failover.ErrPrecondition, failover.OutcomeNotAttempted, ""},
		{"failed", `exit 3`, failover.ErrFailed, failover.OutcomeFailed, ""},
		{"crashed", `exit 1`, failover.ErrUnknownOutcome, failover.OutcomeUnknown, ""},
		{"hangs", `sleep 30`, failover.ErrTimeout, failover.OutcomeUnknown, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// Only the hanging command meets its timeout: on a loaded
			// machine a shell that exits at once may take longer than
			// half a second to start.
			timeout := 30 * time.Second
			if tc.want == failover.ErrTimeout {
				timeout = 500 * time.Millisecond
			}
			d, err := New(Config{Cluster: "c1", Command: []string{script(t, dir, tc.body)}, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := d.Switchover(context.Background(), req)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if res.Outcome != tc.outcome || res.NewLeader != tc.leader || !res.Sent {
				t.Fatalf("result = %+v", res)
			}
			if tc.want == failover.ErrTimeout && time.Since(start) > 5*time.Second {
				t.Fatalf("took %s: the process group was not killed at the timeout", time.Since(start))
			}
			stdin, env := runs(t, dir)
			if len(stdin) != 1 || len(env) != 1 {
				t.Fatalf("%d runs, want exactly 1", len(stdin))
			}
			if p := stdin[0]; p.Action != failover.ActionSwitchover || p.To != "b" || p.FencingToken != 5 {
				t.Fatalf("stdin payload = %+v", p)
			}
			for _, kv := range []string{"MCIV_ACTION=switchover", "MCIV_CLUSTER=c1", "MCIV_FROM=a", "MCIV_TO=b",
				"MCIV_FENCING_TOKEN=5", "MCIV_REASON=why", "MCIV_PRIMARY_CONFIRMED_DEAD=false"} {
				if !strings.Contains(env[0], kv+"\n") {
					t.Fatalf("env lacks %s:\n%s", kv, env[0])
				}
			}
		})
	}
}

func TestCommandTopologyAndRefusals(t *testing.T) {
	requireSh(t)
	dir := t.TempDir()
	topo := filepath.Join(dir, "topo.json")
	write := func(leader string, tl int) {
		t.Helper()
		tp := failover.Topology{Members: []failover.Member{
			{Name: "a", Role: failover.RoleReplica, State: "running", Timeline: int64(tl)},
			{Name: "b", Role: failover.RoleReplica, State: "running", Timeline: int64(tl)},
		}}
		for i := range tp.Members {
			if tp.Members[i].Name == leader {
				tp.Members[i].Role = failover.RoleLeader
			}
		}
		b, _ := json.Marshal(tp)
		if err := os.WriteFile(topo, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1)
	// The action program promotes b by rewriting the topology.
	newTopo, _ := json.Marshal(failover.Topology{Members: []failover.Member{
		{Name: "a", Role: failover.RoleReplica, State: "running", Timeline: 2},
		{Name: "b", Role: failover.RoleLeader, State: "running", Timeline: 2},
	}})
	act := script(t, dir, "printf '%s' '"+string(newTopo)+"' > "+topo)
	d, err := New(Config{Cluster: "c1", Command: []string{act}, TopologyCommand: []string{"cat", topo},
		ConfirmTimeout: 2 * time.Second, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stale := req
	stale.From = "z"
	if _, err := d.Switchover(context.Background(), stale); !errors.Is(err, failover.ErrLeaderMismatch) {
		t.Fatalf("stale leader: %v", err)
	}
	if _, err := d.Failover(context.Background(), req); !errors.Is(err, failover.ErrPrimaryAlive) {
		t.Fatalf("failover unconfirmed: %v", err)
	}
	if stdin, _ := runs(t, dir); len(stdin) != 0 {
		t.Fatalf("refusals ran the command %d times", len(stdin))
	}
	res, err := d.Switchover(context.Background(), req)
	if err != nil || res.NewLeader != "b" || res.After.Members[1].Timeline != 2 {
		t.Fatalf("switchover: %v %+v", err, res)
	}
	if stdin, _ := runs(t, dir); len(stdin) != 1 || stdin[0].Topology == nil {
		t.Fatalf("runs = %+v, want one with the topology", stdin)
	}

	missing, _ := New(Config{Command: []string{filepath.Join(dir, "nope")}})
	res, err = missing.Switchover(context.Background(), req)
	if !errors.Is(err, failover.ErrUnavailable) || res.Sent {
		t.Fatalf("missing program: %v %+v", err, res)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("empty command accepted")
	}
}

func requireSh(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
}
