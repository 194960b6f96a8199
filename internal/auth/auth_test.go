package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestInitLoadIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	tr, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, InitOptions{}); err == nil {
		t.Fatal("Init overwrote a trust root")
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("trust dir mode %o", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if err := CheckSecretFile(filepath.Join(dir, e.Name())); err != nil {
			t.Error(err)
		}
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.AccountKey != tr.AccountKey || loaded.SystemKey != tr.SystemKey {
		t.Fatal("Load read other keys")
	}
	c, err := loaded.Issue(Identity{Role: Collector, Cluster: "payments", Name: "db-1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := IdentityOf(c.JWT)
	if err != nil || id != (Identity{Role: Collector, Cluster: "payments", Name: "db-1"}) {
		t.Fatalf("IdentityOf = %+v, %v", id, err)
	}
	for _, bad := range []Identity{
		{Role: Collector, Cluster: "Payments", Name: "db-1"},
		{Role: Collector, Cluster: "payments", Name: "db.1"},
		{Role: "root", Cluster: "payments", Name: "x"},
	} {
		if _, err := loaded.Issue(bad, 0); err == nil {
			t.Errorf("issued %+v", bad)
		}
	}
	data, err := c.CredsFile()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db-1.creds")
	if err := WriteSecret(path, data); err != nil {
		t.Fatal(err)
	}
	if id2, err := IdentityOfCredsFile(path); err != nil || id2 != id {
		t.Fatalf("IdentityOfCredsFile = %+v, %v", id2, err)
	}
}

func TestCheckSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mciv.yaml")
	if err := os.WriteFile(path, []byte("slack: {token: xoxb-secret}"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckSecretFile(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "xoxb") {
		t.Fatalf("CheckSecretFile(0644) = %v", err)
	}
	_ = os.Chmod(path, 0o600)
	if err := CheckSecretFile(path); err != nil {
		t.Fatal(err)
	}
	if err := CheckSecretFile(path + ".missing"); err != nil {
		t.Fatal(err)
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%s) = %s, %v", r, got, err)
		}
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root) succeeded")
	}
}

// TestShippedServerConfig runs a real nats-server from the configuration
// `mciv auth server-config` writes: a collector publishes its own samples
// and nothing else.
func TestShippedServerConfig(t *testing.T) {
	dir := t.TempDir()
	tr, err := Init(filepath.Join(dir, "auth"), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tr.WriteServerConfig(&b, ServerConfig{Name: "n1", Listen: "127.0.0.1:-1", StoreDir: filepath.Join(dir, "js"), MaxStore: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server rejects the generated config: %v\n%s", err, b.String())
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	c, err := tr.Issue(Identity{Role: Collector, Cluster: "payments", Name: "db-1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	denied := make(chan error, 4)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserJWTAndSeed(c.JWT, string(c.Seed)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("mciv.samples.payments.db-1", []byte("own")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("mciv.samples.payments.db-2", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-denied:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "db-2") {
			t.Fatalf("error %v, want a violation for db-2", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forged subject was not refused")
	}
	select {
	case err := <-denied:
		t.Fatalf("own subject refused too: %v", err)
	default:
	}
}
