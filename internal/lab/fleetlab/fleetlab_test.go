package fleetlab

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestClusterFormsAndSurvivesAKill starts three nodes, checks that a
// client sees a cluster of three, kills one and restarts it.
func TestClusterFormsAndSurvivesAKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := Start(ctx, t, 3)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for len(nc.Servers()) < 3 || nc.ConnectedClusterName() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("cluster %q with %d servers", nc.ConnectedClusterName(), len(nc.Servers()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Kill(1)
	if err := c.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if c.Index("n2") != 2 || c.Index("x") != -1 {
		t.Fatal("Index")
	}
}
