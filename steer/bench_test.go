package steer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// benchEnv makes the test binary, re-run with "addr n", time n
// socket+connect+close cycles to addr and print the mean in ns.
const benchEnv = "MCIV_STEER_HELPER_BENCH"

// helperBench is the benchmark helper (see benchEnv).
func helperBench(arg string) int {
	addr, nStr, _ := strings.Cut(arg, " ")
	n, _ := strconv.Atoi(nStr)
	ap := netip.MustParseAddrPort(addr)
	sa := &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		if err := syscall.Connect(fd, sa); err != nil {
			fmt.Println("error", err)
			return 1
		}
		// RST on close: no TIME_WAIT, so rounds do not run out of ports.
		_ = syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		syscall.Close(fd)
	}
	fmt.Println(time.Since(start).Nanoseconds() / int64(n))
	return 0
}

func init() {
	if arg := os.Getenv(benchEnv); arg != "" {
		os.Exit(helperBench(arg))
	}
}

// benchIn runs the helper inside cgroup dir and returns ns per connect.
func benchIn(b *testing.B, ctx context.Context, dir, addr string, n int) float64 {
	b.Helper()
	fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", benchEnv, addr, n))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("helper: %v: %s", err, out)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("helper: %s", out)
	}
	return v
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkConnect measures socket+connect+close on loopback, side by
// side in alternating rounds: in a cgroup without the program (to the
// backend), with it attached to a listed service address (steered), and
// with it attached to an address not listed. It reports each median, the
// ratios of the medians to none, and the median of each round's own
// ratios (paired: drift between rounds cancels).
func BenchmarkConnect(b *testing.B) {
	steered := testCgroup(b)
	plain := testCgroup(b)
	ctx := context.Background()
	d, err := NewDatapath(steered)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	backend := netip.MustParseAddrPort(l.Addr().String())
	svc := netip.MustParseAddrPort("127.77.0.9:5432")
	if err := d.Set(Entry{Service: svc, ServiceID: 1, Backends: []Target{{Addr: backend, ID: 1, Weight: 1}}}); err != nil {
		b.Fatal(err)
	}
	// The kernel's own accounting of the program's run time (Linux 5.8+).
	if st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer st.Close()
	}
	const n = 2000
	var none, hit, miss []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate the order so that drift favours nobody.
		if i%2 == 0 {
			none = append(none, benchIn(b, ctx, plain, backend.String(), n))
			hit = append(hit, benchIn(b, ctx, steered, svc.String(), n))
			miss = append(miss, benchIn(b, ctx, steered, backend.String(), n))
		} else {
			miss = append(miss, benchIn(b, ctx, steered, backend.String(), n))
			hit = append(hit, benchIn(b, ctx, steered, svc.String(), n))
			none = append(none, benchIn(b, ctx, plain, backend.String(), n))
		}
	}
	b.StopTimer()
	mn, mh, mm := median(none), median(hit), median(miss)
	b.ReportMetric(mn, "ns/connect-none")
	b.ReportMetric(mh, "ns/connect-steered")
	b.ReportMetric(mm, "ns/connect-unlisted")
	b.ReportMetric(mh/mn, "ratio-steered")
	b.ReportMetric(mm/mn, "ratio-unlisted")
	// Each round's own ratio, then their median: the three runs of one
	// round are seconds apart, so the host's drift between rounds cancels.
	var ph, pm []float64
	for i := range none {
		ph, pm = append(ph, hit[i]/none[i]), append(pm, miss[i]/none[i])
	}
	b.ReportMetric(median(ph), "ratio-steered-paired")
	b.ReportMetric(median(pm), "ratio-unlisted-paired")
	if ps, err := d.objs.SteerConnect4.Stats(); err == nil && ps.RunCount > 0 {
		b.ReportMetric(float64(ps.Runtime.Nanoseconds())/float64(ps.RunCount), "ns/connect4-run")
	}
}
