package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/auth"
)

func TestAuthInitIssueServerConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	out, err := runCLI(t.Context(), "auth", "init", "--dir", dir)
	if err != nil || !strings.Contains(out, "trust root created") {
		t.Fatalf("auth init: %v\n%s", err, out)
	}
	creds := filepath.Join(t.TempDir(), "db-1.creds")
	if out, err := runCLI(t.Context(), "auth", "issue", "--dir", dir, "--role", "collector", "--cluster", "payments", "--name", "db-1", "--out", creds); err != nil {
		t.Fatalf("auth issue: %v\n%s", err, out)
	}
	st, err := os.Stat(creds)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("creds file: %v %v", st, err)
	}
	id, err := auth.IdentityOfCredsFile(creds)
	if err != nil || id.Role != auth.Collector || id.Name != "db-1" || id.Cluster != "payments" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	if _, err := runCLI(t.Context(), "auth", "issue", "--dir", dir, "--role", "god", "--name", "x"); err == nil {
		t.Fatal("issued an unknown role")
	}
	out, err = runCLI(t.Context(), "auth", "server-config", "--dir", dir, "--store-dir", "/var/lib/nats")
	if err != nil || !strings.Contains(out, "operator:") || !strings.Contains(out, "resolver_preload") || !strings.Contains(out, "max_file_store") {
		t.Fatalf("server-config: %v\n%s", err, out)
	}
}
