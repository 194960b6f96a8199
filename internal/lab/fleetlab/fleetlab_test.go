package fleetlab

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mciv/mciv/internal/lab/testenv"
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

// TestCutAndHeal cuts a node off with nftables: a client connected to it
// stops getting answers, and after Heal it gets them again.
func TestCutAndHeal(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "nft")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := Start(ctx, t, 3)
	nc, err := nats.Connect(c.Nodes[0].URL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Cut(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(time.Second); err == nil {
		t.Error("a client of the cut node still gets answers")
	}
	if err := c.Heal(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Errorf("after Heal: %v", err)
	}
	if err := c.Heal(ctx, 0); err != nil {
		t.Errorf("a second Heal: %v", err)
	}
}
