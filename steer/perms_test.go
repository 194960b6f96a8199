package steer

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/steer/routes"
)

// TestAgentRoleOnlyReads runs an agent with a credential of the steer
// role, issued by a trust root whose permissions the server enforces: it
// follows the routes, and cannot write one. The controller's credential
// writes them.
func TestAgentRoleOnlyReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	trust, err := auth.Init(filepath.Join(t.TempDir(), "auth"), auth.InitOptions{MaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true}
	if err := trust.ConfigureServer(opts); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	connect := func(role auth.Role, name string) *nats.Conn {
		t.Helper()
		c, err := trust.Issue(auth.Identity{Role: role, Cluster: "pay", Name: name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(srv.ClientURL(), nats.UserJWTAndSeed(c.JWT, string(c.Seed)),
			nats.CustomInboxPrefix(auth.InboxPrefix(role, "pay", name)))
		if err != nil {
			t.Fatalf("%s connects: %v", role, err)
		}
		return nc
	}
	ctlNC := connect(ControllerRole, "ctl")
	defer ctlNC.Close()
	ctlJS, _ := jetstream.New(ctlNC)
	kv, err := EnsureBucket(ctx, ctlJS, DefaultBucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	backend := listener(t)
	r := routes.Route{V: routes.Version, Service: "pay-rw", Role: routes.ReadWrite, Cluster: "pay", Member: "pg0", Addr: backend}
	data, _ := json.Marshal(r)
	if _, err := kv.Put(ctx, "pay-rw", data); err != nil {
		t.Fatal(err)
	}

	agentNC := connect(AgentRole, "app-1")
	defer agentNC.Close()
	agentJS, _ := jetstream.New(agentNC)
	cfg := Config{Agent: true, Cgroup: "/fake", StatusFile: "-",
		Services: []ServiceConfig{{Name: "pay-rw", Address: "127.77.0.1:5432", Role: "rw", Clusters: []string{"pay"}}},
		Clusters: map[string]ClusterConfig{"pay": {Members: map[string]string{"pg0": backend}}}}
	dp := newFakeDP()
	agent, err := NewAgent(cfg, dp, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = agent.Run(ctx, agentNC, agentJS) }()
	eventually(t, ctx, "the agent follows the route", func() bool { return dp.backend("127.77.0.1:5432").String() == backend })

	// The agent's user cannot write a route, nor publish an action.
	akv, err := agentJS.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	if _, err := akv.Put(pctx, "pay-rw", []byte(`{"v":1}`)); err == nil {
		t.Fatal("the agent's user wrote a route")
	}
	errs := make(chan error, 1)
	agentNC.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	})
	_ = agentNC.Publish("mciv.actions.pay", []byte("{}"))
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("unexpected error: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("publishing an action was not refused")
	}
}
