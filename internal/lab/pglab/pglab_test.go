package pglab

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

// Require skips t unless a throwaway server can be started here.
func require(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFile(t, DefaultBinDir+"/postgres", "Debian's postgresql-15")
	testenv.RequireCommand(t, "psql", "pgbench")
}

func TestServerLifecycle(t *testing.T) {
	require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	out, err := s.Psql(ctx, "SELECT 40 + 2")
	if err != nil || out != "42" {
		t.Fatalf("psql: %q %v", out, err)
	}
	for _, p := range []Protocol{Simple, Extended, Prepared} {
		out, err := s.Pgbench(ctx, "SELECT 1;", 5, p)
		if err != nil || !strings.Contains(out, "number of transactions actually processed: 5") {
			t.Fatalf("pgbench %s: %v\n%s", p, err, out)
		}
	}
	// The same through the Unix socket: the server sees no client
	// address.
	u := s.OverUnix()
	if out, err := u.Psql(ctx, "SELECT coalesce(inet_client_addr()::text, 'unix')"); err != nil || out != "unix" {
		t.Fatalf("psql over the Unix socket: %q %v", out, err)
	}
	if out, err := s.Psql(ctx, "SELECT inet_client_addr()"); err != nil || out != "127.0.0.1" {
		t.Fatalf("psql over TCP after OverUnix: %q %v", out, err)
	}
	if _, err := os.Stat(s.SocketDir() + "/.s.PGSQL." + strconv.Itoa(s.Port)); err != nil {
		t.Fatalf("socket file: %v", err)
	}
	if s.Instance() == "" || s.Pid() <= 0 {
		t.Fatal("no instance or pid")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("data dir left behind: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
