package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/yamltime"
)

func TestDemoFiresAndResolves(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.ExclusiveKernel(t)
	testenv.RequireCommand(t, "ip", "nft")
	testenv.RequireFile(t, "/sys/kernel/btf/vmlinux", "the kernel's BTF, for CO-RE eBPF")
	if err := collector.MountTracefs(); err != nil {
		testenv.Missing(t, "tracefs: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := config.Default()
	cfg.Cluster, cfg.Host = "demo", "demo-host"
	cfg.Collector.Interval = yamltime.Duration(500 * time.Millisecond)
	var out testenv.LockedBuffer
	err := Run(ctx, Options{
		Config: cfg, Quiet: 2 * time.Second, LossPercent: 20, MaxWait: 60 * time.Second,
		Namespace: "mciv-demo-test", Out: &out,
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"FIRING", "RESOLVED", "TCPRetransmitRateHigh", "demo-host"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Index(text, "RESOLVED") < strings.Index(text, "FIRING") {
		t.Error("resolved before firing")
	}
}
