package latbench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func retransSegs(t *testing.T, lab *NetLab) int64 {
	t.Helper()
	n, err := lab.Retransmits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVethForDiffersPerLab(t *testing.T) {
	h1, n1, a1, b1 := vethFor("mciv-latbench")
	h2, n2, a2, _ := vethFor("mciv-latbench-test")
	if h1 == h2 || n1 == n2 || a1 == a2 {
		t.Errorf("two labs share a veth pair: %s/%s %s and %s/%s %s", h1, n1, a1, h2, n2, a2)
	}
	if len(h1) > 15 || len(n1) > 15 {
		t.Errorf("interface names %q, %q longer than 15 characters", h1, n1)
	}
	_, sub, err := net.ParseCIDR(a1 + vethPrefix)
	if err != nil || !sub.Contains(net.ParseIP(b1)) || a1 == b1 {
		t.Errorf("addresses %s and %s not two hosts of one %s: %v", a1, b1, vethPrefix, err)
	}
}

func TestParseRetransSegs(t *testing.T) {
	const snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin ActiveOpens RetransSegs InErrs\nTcp: 1 200 5 42 0\nUdp: InDatagrams\nUdp: 3\n"
	if n, err := parseRetransSegs(snmp); err != nil || n != 42 {
		t.Fatalf("parseRetransSegs = %d, %v; want 42", n, err)
	}
	for _, bad := range []string{"", "Tcp: RetransSegs\n", "Tcp: RetransSegs\nTcp: x\n", "Tcp: ActiveOpens\nTcp: 1\n"} {
		if _, err := parseRetransSegs(bad); err == nil {
			t.Errorf("parseRetransSegs(%q): no error", bad)
		}
	}
}

// TestNetLabLossRetransmitsInItsNamespace checks the lab the benchmark
// measures with: the workload flows, the veth pair reaches the namespace
// from the host, and the loss makes the namespace's own counter (the one
// node_exporter inside it reports) grow.
func TestNetLabLossRetransmitsInItsNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "nft")
	testenv.ExclusiveKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lab, err := NewNetLab(ctx, "mciv-latbench-test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if lab.vethExists() {
			t.Errorf("the veth %s outlived the lab", lab.vethHost)
		}
	}()

	// The host reaches a listener on the namespace's end of the pair.
	var ln net.Listener
	if err := inNetns(lab.Path(), func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(lab.NSAddr(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			fmt.Fprint(c, "hello")
			c.Close()
		}
	}()
	c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the namespace over the veth pair: %v", err)
	}
	buf := make([]byte, 5)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read over the veth pair: %q, %v", buf, err)
	}
	c.Close()

	time.Sleep(300 * time.Millisecond)
	if sent, echoed := lab.Traffic(); sent == 0 || echoed == 0 {
		t.Fatalf("workload: sent %d, echoed %d bytes", sent, echoed)
	}
	before := retransSegs(t, lab)
	if err := lab.SetLoss(ctx, 20); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for retransSegs(t, lab) < before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("RetransSegs in the namespace went from %d to %d in 10 s of 20%% loss", before, retransSegs(t, lab))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := lab.SetLoss(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// With the loss off the stream recovers and the counter stops.
	time.Sleep(2 * time.Second)
	settled := retransSegs(t, lab)
	time.Sleep(time.Second)
	if after := retransSegs(t, lab); after > settled+2 {
		t.Errorf("RetransSegs still grows with the loss off: %d -> %d in 1 s", settled, after)
	}
}
