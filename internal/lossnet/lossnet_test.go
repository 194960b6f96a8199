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

	"github.com/mciv/mciv/internal/testenv"
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
