package mylab

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestServerLifecycle(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFile(t, DefaultServer, "Debian's mariadb-server")
	testenv.RequireCommand(t, DefaultInstallDB, DefaultClient)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	out, err := s.Query(ctx, "SELECT 40 + 2")
	if err != nil || out != "42" {
		t.Fatalf("query: %q %v", out, err)
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
}
