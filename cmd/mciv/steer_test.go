package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/steer"
	"github.com/mciv/mciv/steer/routes"
)

func TestSteerStatus(t *testing.T) {
	st := steer.Status{
		Cgroup: "/sys/fs/cgroup/unified/app", NATS: "following MCIV_ROUTES", At: time.Unix(0, 0).UTC(),
		Hooks: []steer.Hook{{Name: "cgroup/connect4", Attached: true}, {Name: "cgroup/connect6", Error: "EINVAL"}},
		Services: []steer.ServiceStatus{{Name: "payments-rw", Address: "127.77.0.1:5432", Role: "rw",
			Route:    &routes.Route{Cluster: "payments", Member: "pg1", Addr: "10.0.0.11:5432"},
			Connects: map[string]uint64{"payments/pg1": 7}},
			{Name: "payments-ro", Address: "127.77.0.2:5432", Role: "ro",
				Route: &routes.Route{Cluster: "payments", Member: "pg1", Addr: "10.0.0.11:5432", Spread: []routes.Target{
					{Cluster: "payments", Member: "pg1", Addr: "10.0.0.11:5432", Weight: 1},
					{Cluster: "payments", Member: "pg2", Addr: "10.0.0.12:5432", Weight: 1}}},
				Connects: map[string]uint64{"payments/pg1": 30, "payments/pg2": 10}}},
	}
	data, _ := json.Marshal(st)
	path := filepath.Join(t.TempDir(), "steer.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(context.Background(), "steer", "status", "--status-file", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"following MCIV_ROUTES", "cgroup/connect6 NOT attached: EINVAL", "payments-rw", "payments/pg1 10.0.0.11:5432", "payments/pg1=7",
		"spread payments/pg1 10.0.0.11:5432 w1, payments/pg2 10.0.0.12:5432 w1", "payments/pg1=30 (75%)", "payments/pg2=10 (25%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if _, err := runCLI(context.Background(), "steer", "status", "--status-file", path+".none"); err == nil {
		t.Error("missing status file: want an error")
	}
	if _, err := runCLI(context.Background(), "steer"); err == nil || !strings.Contains(err.Error(), "steer:") {
		t.Errorf("no steer section: %v", err)
	}
}

func TestSteerDetachNothingPinned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pins")
	out, err := runCLI(context.Background(), "steer", "detach", "--pin-dir", dir)
	if err != nil || !strings.Contains(out, "nothing pinned at "+dir) {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := runCLI(context.Background(), "steer", "detach"); err == nil || !strings.Contains(err.Error(), "pin directory") {
		t.Fatalf("no config: %v", err)
	}
}
