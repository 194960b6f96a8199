package lossnet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestLossRuleset(t *testing.T) {
	got := lossRuleset(5432, 20)
	for _, want := range []string{
		"add table inet mciv_lossnet\ndelete table inet mciv_lossnet\n",
		"type filter hook input priority filter; policy accept;",
		"tcp dport 5432 numgen random mod 100 < 20 drop",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
}

func TestNewRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "a b", "../x", "-x", strings.Repeat("n", 64)} {
		if _, err := New(context.Background(), name); err == nil {
			t.Errorf("New(%q): no error", name)
		}
	}
}

func TestSetLossNeedsWorkloadAndRange(t *testing.T) {
	l := &Lab{name: "unused"}
	if err := l.SetLoss(context.Background(), 10); err == nil {
		t.Error("SetLoss without a workload: no error")
	}
	for _, p := range []int{-1, 101} {
		if err := l.SetPortLoss(context.Background(), 80, p); err == nil {
			t.Errorf("SetPortLoss(%d%%): no error", p)
		}
	}
}

func requireLab(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "nft")
}

// TestLabRetransmits runs the whole lab: the workload flows, loss makes
// the namespace's TCP retransmit, clearing it removes the rule, and Close
// removes the namespace.
func TestLabRetransmits(t *testing.T) {
	requireLab(t)
	testenv.ExclusiveKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const name = "mciv-lossnet-test"

	// A namespace left over from an earlier run is replaced.
	if err := exec.CommandContext(ctx, "ip", "netns", "add", name).Run(); err != nil {
		t.Logf("pre-creating a leftover namespace: %v", err)
	}
	l, err := New(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	port, err := l.StartWorkload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if port == 0 || l.Port() != port {
		t.Fatalf("port %d, Port() %d", port, l.Port())
	}
	if _, err := l.StartWorkload(ctx); err == nil {
		t.Error("a second workload started")
	}
	waitFor(ctx, t, "echoed traffic", func() bool {
		_, echoed := l.Traffic()
		return echoed > 4*chunkSize
	})

	before := retransSegs(ctx, t, l)
	if err := l.SetLoss(ctx, 30); err != nil {
		t.Fatal(err)
	}
	out, err := l.Command(ctx, "nft", "list", "table", "inet", nftTable).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("tcp dport %d numgen random mod 100 < 30 drop", port)) {
		t.Fatalf("nft table after SetLoss (%v):\n%s", err, out)
	}
	waitFor(ctx, t, "retransmits in the namespace", func() bool {
		return retransSegs(ctx, t, l) > before
	})

	if err := l.ClearLoss(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.ClearLoss(ctx); err != nil {
		t.Fatalf("second ClearLoss: %v", err)
	}
	if out, err := l.Command(ctx, "nft", "list", "ruleset").CombinedOutput(); err != nil || strings.Contains(string(out), nftTable) {
		t.Fatalf("ruleset after ClearLoss (%v):\n%s", err, out)
	}
	// The stream still flows once the loss is gone.
	_, echoed := l.Traffic()
	waitFor(ctx, t, "traffic after ClearLoss", func() bool {
		_, now := l.Traffic()
		return now > echoed+4*chunkSize
	})

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat("/run/netns/" + name); err == nil {
		t.Fatal("namespace still exists after Close")
	}
	if err := l.SetLoss(ctx, 10); err == nil {
		t.Error("SetLoss after Close: no error")
	}
}

// TestWorkloadStopsWithContext checks that ending the context passed to
// StartWorkload stops the stream.
func TestWorkloadStopsWithContext(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, "mciv-lossnet-ctx")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wctx, stop := context.WithCancel(ctx)
	if _, err := l.StartWorkload(wctx); err != nil {
		t.Fatal(err)
	}
	stop()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("workload goroutines still running after its context ended")
	}
}

// retransSegs reads Tcp RetransSegs from the namespace's /proc/net/snmp.
func retransSegs(ctx context.Context, t *testing.T, l *Lab) int64 {
	t.Helper()
	out, err := l.Command(ctx, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("read /proc/net/snmp in %s: %v", l.Name(), err)
	}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == "RetransSegs" && i < len(f) {
				n, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					t.Fatalf("RetransSegs %q: %v", f[i], err)
				}
				return n
			}
		}
	}
	t.Fatalf("no Tcp RetransSegs in /proc/net/snmp:\n%s", out)
	return 0
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func TestPortLossRuleset(t *testing.T) {
	got, err := PortLoss{Table: "mciv_fault", Port: 6432, Percent: 35, SkipLoopback: true}.Ruleset()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"add table inet mciv_fault\ndelete table inet mciv_fault\n",
		"table inet mciv_fault {",
		"type filter hook input priority filter; policy accept;",
		`iifname != "lo" tcp dport 6432 numgen random mod 100 < 35 drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "chain output") {
		t.Errorf("one-way ruleset has an output chain:\n%s", got)
	}
	both, err := PortLoss{Table: "mciv_fault", Port: 6432, Percent: 35, SkipLoopback: true, BothWays: true}.Ruleset()
	if err != nil || !strings.Contains(both, `iifname != "lo" tcp dport 6432 numgen random mod 100 < 35 drop`) ||
		!strings.Contains(both, "type filter hook output priority filter; policy accept;") ||
		!strings.Contains(both, `oifname != "lo" tcp sport 6432 numgen random mod 100 < 35 drop`) {
		t.Errorf("both-ways ruleset (%v):\n%s", err, both)
	}
	// nft rejects "mod 100 < 100": 100% is a plain drop.
	all, err := PortLoss{Port: 6432, Percent: 100}.Ruleset()
	if err != nil || !strings.Contains(all, "\t\ttcp dport 6432 drop\n") || strings.Contains(all, "numgen") {
		t.Errorf("100%% ruleset (%v):\n%s", err, all)
	}
	// The default table and no loopback exception: what the Lab installs.
	def, err := PortLoss{Port: 5432, Percent: 20}.Ruleset()
	if err != nil || def != lossRuleset(5432, 20) || strings.Contains(def, "iifname") {
		t.Errorf("default PortLoss ruleset (%v):\n%s\nwant:\n%s", err, def, lossRuleset(5432, 20))
	}
	for _, bad := range []PortLoss{
		{Port: 80, Percent: 0}, {Port: 80, Percent: 101}, {Port: 0, Percent: 10}, {Port: 65536, Percent: 10},
		{Table: "x y", Port: 80, Percent: 10}, {Table: "1x", Port: 80, Percent: 10},
	} {
		if s, err := bad.Ruleset(); err == nil {
			t.Errorf("%+v: no error, ruleset:\n%s", bad, s)
		}
	}
	if got := ClearRuleset("t1"); got != "add table inet t1\ndelete table inet t1\n" {
		t.Errorf("ClearRuleset = %q", got)
	}
}

func TestNftRejectsBadNamespace(t *testing.T) {
	for _, name := range []string{"", "../x", "a b"} {
		if err := Nft(context.Background(), name, ClearRuleset("t")); err == nil {
			t.Errorf("Nft(%q): no error", name)
		}
	}
}

// TestNftInNamespace installs and removes a PortLoss table in a named
// namespace through Nft, next to the lab's own table.
func TestNftInNamespace(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, "mciv-lossnet-nft")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	script, err := PortLoss{Table: "mciv_nft_test", Port: 7000, Percent: 40, SkipLoopback: true, BothWays: true}.Ruleset()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // replacing the table works as well as creating it
		if err := Nft(ctx, l.Name(), script); err != nil {
			t.Fatal(err)
		}
	}
	out, err := l.Command(ctx, "nft", "list", "table", "inet", "mciv_nft_test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `iifname != "lo" tcp dport 7000 numgen random mod 100 < 40 drop`) {
		t.Fatalf("nft table after Nft (%v):\n%s", err, out)
	}
	// Replaced, not added to: one rule per direction.
	if strings.Count(string(out), "numgen") != 2 || !strings.Contains(string(out), `oifname != "lo" tcp sport 7000 numgen random mod 100 < 40 drop`) {
		t.Fatalf("want exactly one rule each way:\n%s", out)
	}
	all, err := PortLoss{Table: "mciv_nft_test", Port: 7000, Percent: 100}.Ruleset()
	if err != nil {
		t.Fatal(err)
	}
	if err := Nft(ctx, l.Name(), all); err != nil {
		t.Fatalf("100%% loss: %v", err)
	}
	out, err = l.Command(ctx, "nft", "list", "table", "inet", "mciv_nft_test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tcp dport 7000 drop") || strings.Contains(string(out), "numgen") {
		t.Fatalf("nft table after 100%% loss (%v):\n%s", err, out)
	}
	// The host's ruleset does not have it.
	if host, err := exec.CommandContext(ctx, "nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(host), "mciv_nft_test") {
		t.Fatalf("host tables (%v):\n%s", err, host)
	}
	for range 2 { // clearing twice is fine
		if err := Nft(ctx, l.Name(), ClearRuleset("mciv_nft_test")); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := l.Command(ctx, "nft", "list", "ruleset").CombinedOutput(); err != nil || strings.Contains(string(out), "mciv_nft_test") {
		t.Fatalf("ruleset after clearing (%v):\n%s", err, out)
	}
	if err := Nft(ctx, "mciv-lossnet-absent", ClearRuleset("t")); err == nil {
		t.Error("Nft in a namespace that does not exist: no error")
	}
}
