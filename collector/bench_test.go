package collector

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/internal/lab/pglab"
	"github.com/mciv/mciv/internal/lab/testenv"
)

// BenchmarkPgbenchOverhead measures what the collector costs a real
// PostgreSQL (run in a cgroup of its own, as systemd runs it): pgbench -S
// throughput without any probe (A), with the collector attached as it is
// by default (B: query latency from the server's packets), with bpftrace
// running the equivalent USDT latency histogram (C), with the collector
// measuring through the socket tracepoints (S) and through the USDT probes
// (D), interleaved A B A C A S A D A, then C S D B, ... with an A run
// between any two others, on one server. It reports the median throughput
// ratios B/A, C/A, S/A and D/A (each to the mean of the A runs on either side),
// and the collector's CPU per 10,000
// queries per second in its default mode: its own process (user+system,
// reading the maps and publishing) and its eBPF programs (run time from
// the kernel's BPF statistics, on only for one last run of B).
//
// Knobs, all optional:
//   - MCIV_BENCH_ROUNDS: rounds (default 6); 0 for only the CPU run, whose
//     log has each eBPF program's ns per run.
//   - MCIV_BENCH_VARIANTS=collector,bpftrace,socket,usdt: only these of B, C, S, D,
//     for more rounds of one comparison in the same time.
//   - MCIV_BENCH_CLIENTS: pgbench's clients and threads (default 2).
//   - MCIV_BENCH_SKIP_HOOKS=tcp_probe,...: B without these kernel hooks,
//     to see what each costs.
//
// BenchmarkPgbenchOverheadToggled measures B/A more finely.
func BenchmarkPgbenchOverhead(b *testing.B) {
	testenv.RequireCommand(b, "bpftrace")
	ctx, pg := benchServer(b, 20*time.Minute)
	const runFor = 4 * time.Second
	clients := envInt("MCIV_BENCH_CLIENTS", 2, 1)
	rounds := envInt("MCIV_BENCH_ROUNDS", 6, 0)
	run := func() (float64, error) {
		rctx, cancel := context.WithTimeout(ctx, runFor+time.Minute)
		defer cancel()
		return pg.SelectOnly(rctx, clients, runFor)
	}
	// The probed runs, each between two runs without any probe (A): a
	// run's ratio is to the mean of the A runs just before and after it,
	// so that drift of the shared machine cancels out. Their order
	// rotates every round.
	type variant struct {
		name   string
		metric string
		run    func() (float64, error)
		ratios []float64
	}
	variants := []*variant{
		{name: "collector", metric: "collector_tps_ratio", run: func() (float64, error) {
			t, _, _, err := withCollector(b, ctx, Config{Cluster: "bench", Host: "pg"}, run, pg.Pid())
			return t, err
		}},
		{name: "bpftrace", metric: "bpftrace_tps_ratio", run: func() (float64, error) { return withBpftrace(b, ctx, pg.Binary, run) }},
		{name: "socket", metric: "collector_socket_tps_ratio", run: func() (float64, error) {
			t, _, _, err := withCollector(b, ctx, Config{Cluster: "bench", Host: "pg", PostgresProbes: PostgresProbesSocket}, run, pg.Pid())
			return t, err
		}},
		{name: "usdt", metric: "collector_usdt_tps_ratio", run: func() (float64, error) {
			t, _, _, err := withCollector(b, ctx, Config{Cluster: "bench", Host: "pg", PostgresProbes: PostgresProbesUSDT}, run, pg.Pid())
			return t, err
		}},
	}
	if v := os.Getenv("MCIV_BENCH_VARIANTS"); v != "" {
		want := strings.Split(v, ",")
		variants = slices.DeleteFunc(variants, func(v *variant) bool { return !slices.Contains(want, v.name) })
		if len(variants) == 0 {
			b.Fatalf("MCIV_BENCH_VARIANTS=%s: no such variant", v)
		}
	}
	var (
		tpsA, nA                 float64
		cpuUser, cpuBPF, queries float64
	)
	before, err := run()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		for round := range rounds {
			line := fmt.Sprintf("round %d:", round)
			for i := range variants {
				v := variants[(i+round)%len(variants)]
				t, err := v.run()
				if err != nil {
					b.Fatal(err)
				}
				after, err := run()
				if err != nil {
					b.Fatal(err)
				}
				ratio := t / ((before + after) / 2)
				v.ratios = append(v.ratios, ratio)
				line += fmt.Sprintf(" none %.0f, %s %.0f (%.3f),", before, v.name, t, ratio)
				tpsA += before
				nA++
				before = after
			}
			fmt.Fprintln(os.Stderr, strings.TrimSuffix(line, ","))
		}
	}
	// The CPU the collector costs, in one more run with the kernel's BPF
	// statistics on (they slow every BPF program a little, so the
	// throughput rounds above ran without them).
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run time statistics: %v", err)
	}
	t, user, bpfTime, err := withCollector(b, ctx, Config{Cluster: "bench", Host: "pg"}, run, pg.Pid())
	_ = stats.Close()
	if err != nil {
		b.Fatal(err)
	}
	cpuUser, cpuBPF, queries = user.Seconds(), bpfTime.Seconds(), t*runFor.Seconds()
	if rounds > 0 {
		for _, v := range variants {
			b.ReportMetric(median(v.ratios), v.metric)
		}
	}
	// CPU seconds per second at 10k qps, in percent of one core.
	per10k := func(cpu float64) float64 { return cpu / queries * 10000 * 100 }
	b.ReportMetric(per10k(cpuUser), "collector_cpu_pct_per_10kqps")
	b.ReportMetric(per10k(cpuBPF), "ebpf_cpu_pct_per_10kqps")
	if nA > 0 {
		b.ReportMetric(tpsA/nA, "baseline_tps")
	}
}

// BenchmarkPgbenchOverheadToggled measures what the collector's kernel
// hooks cost a real PostgreSQL, more finely than BenchmarkPgbenchOverhead
// can: runs seconds apart differ by several percent on a shared machine,
// neighbouring seconds far less. One pgbench -S run reports its throughput
// every second, while collectors, running throughout, have their hooks
// detached and attached in turns of three seconds, each turn starting
// right after a report: a turn without any hooks, then one collector's,
// then none, then the next collector's, and so on. The first second of a
// turn (it holds the switch) is dropped. Each turn with hooks is compared
// with the mean of the turns without them on either side, and the median
// of each collector's ratios is reported: collector_hooks_tps_ratio for
// the collector as it ships (query latency from the server's packets; the
// server runs in a cgroup of its own), collector_socket_tps_ratio for the
// same with postgres_probes: socket (the socket tracepoints). The
// collectors' processes run in every turn, so their CPU is not in the
// ratio: BenchmarkPgbenchOverhead reports it.
//
// MCIV_BENCH_TOGGLE_SECONDS: the run's length (default 90).
// MCIV_BENCH_TOGGLE_VARIANTS=packet,socket: the collectors compared
// (their postgres_probes; default both; "unsampled" is packet with
// QuerySampleQPS -1, every request measured). A variant may name programs its
// collector keeps detached, by name prefix after a "-" each, to see what
// each hook costs: packet-tcp_probe is the collector as it ships without
// its RTT program, packet-db_skb without its packet programs; a variant
// with every program detached (packet-tcp-inet-block-db_skb) shows how far
// the ratios of identical turns spread.
func BenchmarkPgbenchOverheadToggled(b *testing.B) {
	seconds := envInt("MCIV_BENCH_TOGGLE_SECONDS", 90, 12)
	ctx, pg := benchServer(b, time.Duration(seconds)*time.Second+5*time.Minute)
	// The CPU the server and pgbench use, each in a cgroup of its own.
	serverCg := filepath.Join(newCgroupNames("/proc/self/mountinfo").roots[cgroupSockets], cgroupV2Of("/proc", pg.Pid()))
	clientCg := serverCgroup(b)
	pg = pg.ClientsIn(clientCg)
	usage := func() time.Duration {
		var sum time.Duration
		for _, dir := range []string{serverCg, clientCg} {
			u, err := cgroupCPU(dir)
			if err != nil {
				b.Fatal(err)
			}
			sum += u
		}
		return sum
	}
	type variant struct {
		name, probes, metric string
		skip                 []string // program name prefixes kept detached
		c                    *Collector
		p                    *probes
		ratios               []float64
		cpuRatios            []float64
	}
	variants := []*variant{
		{name: PostgresProbesPacket, probes: PostgresProbesPacket, metric: "collector_hooks_tps_ratio"},
		{name: PostgresProbesSocket, probes: PostgresProbesSocket, metric: "collector_socket_tps_ratio"},
	}
	if v := os.Getenv("MCIV_BENCH_TOGGLE_VARIANTS"); v != "" {
		var err error
		if variants, err = parseToggleVariants(v, func(name, probes string, skip []string) *variant {
			metric := "collector_hooks_tps_ratio"
			switch probes {
			case PostgresProbesSocket:
				metric = "collector_socket_tps_ratio"
			case benchUnsampled:
				metric = "collector_unsampled_tps_ratio"
			}
			if len(skip) > 0 {
				metric = "collector_" + strings.ReplaceAll(name, "-", "_") + "_tps_ratio"
			}
			return &variant{name: name, probes: probes, metric: metric, skip: skip}
		}); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		for _, v := range variants {
			c, stop, err := startCollector(ctx, benchConfig(v.probes), pg.Pid())
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			v.c = c
			for _, h := range c.Hooks() {
				if strings.HasPrefix(h.Name, queryPathHook("")) {
					fmt.Fprintf(os.Stderr, "%s: %s via %s %s\n", v.name, h.Name, h.Type, h.Note)
				}
			}
			c.mu.Lock()
			v.p = c.attached
			c.mu.Unlock()
			v.p.pause()
			if c.sampler != nil {
				// The programs kept detached stay out of the windows.
				c.sampler.mu.Lock()
				c.sampler.windowed = slices.DeleteFunc(slices.Clone(c.sampler.windowed), func(name string) bool {
					return slices.ContainsFunc(v.skip, func(x string) bool { return strings.HasPrefix(name, x) })
				})
				c.sampler.mu.Unlock()
			}
			kept, err := parkPrefixed(v.p, v.skip)
			if err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
			fmt.Fprintf(os.Stderr, "%s: programs attached in its turns: %s\n", v.name, strings.Join(kept, " "))
		}
		const turn = 3 // seconds
		var (
			turns     [][]float64 // the kept seconds of each turn; odd turns have hooks
			cpu       [][]float64 // CPU seconds of the server and pgbench in each kept second
			reports   int
			switchErr error
		)
		lastCPU := usage()
		// withHooks is the variant whose hooks odd turn t has.
		withHooks := func(t int) *variant { return variants[(t/2)%len(variants)] }
		_, err := pg.SelectOnlyProgress(ctx, 2, time.Duration(seconds)*time.Second, func(tps float64) {
			t := reports / turn
			for len(turns) <= t {
				turns = append(turns, nil)
				cpu = append(cpu, nil)
			}
			now := usage()
			if reports%turn != 0 {
				turns[t] = append(turns[t], tps)
				cpu[t] = append(cpu[t], (now - lastCPU).Seconds())
			}
			lastCPU = now
			reports++
			if reports%turn != 0 {
				return
			}
			if next := reports / turn; next%2 == 1 {
				if err := withHooks(next).p.resume(); err != nil && switchErr == nil {
					switchErr = err
				}
			} else {
				withHooks(next - 1).p.pause()
			}
		})
		for _, v := range variants {
			v.p.pause()
			for _, h := range v.c.Hooks() {
				if h.Name == samplingRow {
					fmt.Fprintf(os.Stderr, "%s: %s\n", v.name, h.Note)
				}
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		if switchErr != nil {
			b.Fatal(switchErr)
		}
		line := "turns (tps without, with hooks, ...):"
		for t, ts := range turns {
			line += fmt.Sprintf(" %.0f", mean(ts))
			if t%2 == 1 {
				line += "[" + withHooks(t).name + "]"
			}
		}
		fmt.Fprintln(os.Stderr, line)
		for _, r := range turnRatios(turns) {
			v := withHooks(r.turn)
			v.ratios = append(v.ratios, r.ratio)
		}
		// CPU per transaction without hooks over CPU per transaction
		// with them: the throughput kept where the CPU is the limit,
		// and far less moved by the other loads of a shared machine
		// than the throughput itself.
		perTx := make([][]float64, len(turns))
		for t := range turns {
			var c, n float64
			for i := range turns[t] {
				c += cpu[t][i]
				n += turns[t][i]
			}
			if n > 0 {
				perTx[t] = []float64{c / n}
			}
		}
		for _, r := range turnRatios(perTx) {
			v := withHooks(r.turn)
			v.cpuRatios = append(v.cpuRatios, 1/r.ratio)
		}
		for _, v := range variants {
			if len(v.ratios) == 0 {
				b.Fatalf("no turn with the %s hooks between two without: %v", v.name, turns)
			}
			sorted := slices.Clone(v.ratios)
			slices.Sort(sorted)
			fmt.Fprintf(os.Stderr, "%s ratios: %.3f (median %.3f, quartiles %.3f-%.3f)\n", v.name, v.ratios, median(slices.Clone(v.ratios)), quantile(sorted, 0.25), quantile(sorted, 0.75))
			b.ReportMetric(median(v.ratios), v.metric)
			b.ReportMetric(float64(len(v.ratios)), "turns_"+strings.ReplaceAll(v.name, "-", "_"))
			if len(v.cpuRatios) > 0 {
				sorted := slices.Clone(v.cpuRatios)
				slices.Sort(sorted)
				fmt.Fprintf(os.Stderr, "%s CPU per transaction, without/with: %.3f (median %.3f, quartiles %.3f-%.3f)\n", v.name, v.cpuRatios, median(slices.Clone(v.cpuRatios)), quantile(sorted, 0.25), quantile(sorted, 0.75))
				b.ReportMetric(median(v.cpuRatios), strings.TrimSuffix(v.metric, "tps_ratio")+"cpu_ratio")
			}
		}
	}
}

// benchUnsampled is the toggled benchmark's name for the packet path
// that measures every request however busy the server (QuerySampleQPS
// -1): the collector as it was before it sampled.
const benchUnsampled = "unsampled"

// benchConfig is the collector configuration of a toggled variant.
func benchConfig(probes string) Config {
	cfg := Config{Cluster: "bench", Host: "pg", PostgresProbes: probes}
	if probes == benchUnsampled {
		cfg.PostgresProbes, cfg.QuerySampleQPS = PostgresProbesPacket, -1
	}
	return cfg
}

// parseToggleVariants reads MCIV_BENCH_TOGGLE_VARIANTS: comma-separated
// variants, each a postgres_probes value and, after a "-" each, the name
// prefixes of the programs its collector keeps detached.
func parseToggleVariants[V any](spec string, newVariant func(name, probes string, skip []string) V) ([]V, error) {
	var out []V
	seen := make(map[string]bool)
	for name := range strings.SplitSeq(spec, ",") {
		parts := strings.Split(name, "-")
		switch parts[0] {
		case PostgresProbesPacket, PostgresProbesSocket, benchUnsampled:
		default:
			return nil, fmt.Errorf("MCIV_BENCH_TOGGLE_VARIANTS: variant %q: want %s, %s or %s, then -program prefixes", name, PostgresProbesPacket, benchUnsampled, PostgresProbesSocket)
		}
		if slices.Contains(parts[1:], "") || seen[name] {
			return nil, fmt.Errorf("MCIV_BENCH_TOGGLE_VARIANTS: variant %q: empty program prefix, or named twice", name)
		}
		seen[name] = true
		out = append(out, newVariant(name, parts[0], parts[1:]))
	}
	return out, nil
}

// parkPrefixed keeps the programs of p whose names start with one of
// prefixes detached, and returns the names of the others. A prefix that
// matches no program is an error (a misspelt hook would otherwise measure
// the full collector under another name).
func parkPrefixed(p *probes, prefixes []string) ([]string, error) {
	p.mu.Lock()
	var park, kept []string
	used := make(map[string]bool)
	for _, w := range p.ways {
		i := slices.IndexFunc(prefixes, func(x string) bool { return strings.HasPrefix(w.program, x) })
		if i < 0 {
			if !p.parked[w.program] {
				kept = append(kept, w.program)
			}
			continue
		}
		used[prefixes[i]] = true
		park = append(park, w.program)
	}
	p.mu.Unlock()
	for _, x := range prefixes {
		if !used[x] {
			return nil, fmt.Errorf("no attached program starts with %q", x)
		}
	}
	if len(park) == 0 {
		return kept, nil
	}
	return kept, p.park(true, park...)
}

// quantile returns the q-quantile of sorted xs (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Round(q * float64(len(sorted)-1)))
	return sorted[i]
}

// benchServer checks what the overhead benchmarks need, and starts a
// PostgreSQL with pgbench's tables, alone on the kernel's hooks, stopped
// at the end of the benchmark; its context ends after timeout.
func benchServer(b *testing.B, timeout time.Duration) (context.Context, *pglab.Server) {
	b.Helper()
	testenv.RequireRoot(b)
	testenv.RequireCommand(b, "pgbench", "psql")
	testenv.RequireFile(b, debianPostgres, "Debian's postgresql-15")
	if err := MountTracefs(); err != nil {
		testenv.Missing(b, err.Error())
	}
	testenv.ExclusiveKernel(b)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	b.Cleanup(cancel)
	// In a cgroup of its own, as systemd runs it: the collector can
	// measure it through its packets.
	pg, err := pglab.Start(ctx, pglab.Options{Cgroup: serverCgroup(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Stop() })
	if err := pg.InitBench(ctx, 1); err != nil {
		b.Fatal(err)
	}
	return ctx, pg
}

// envInt returns the integer in environment variable name, or def when it
// is unset, not a number, or below least.
func envInt(name string, def, least int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= least {
		return v
	}
	return def
}

// turnRatio is the throughput ratio of one turn with hooks.
type turnRatio struct {
	turn  int
	ratio float64
}

// turnRatios returns, for each odd turn (with hooks) that has an even
// turn (without) on either side, the ratio of its mean throughput to the
// mean of theirs. Empty turns are skipped.
func turnRatios(turns [][]float64) []turnRatio {
	var out []turnRatio
	for t := 1; t+1 < len(turns); t += 2 {
		if len(turns[t-1]) == 0 || len(turns[t]) == 0 || len(turns[t+1]) == 0 {
			continue
		}
		out = append(out, turnRatio{t, mean(turns[t]) / ((mean(turns[t-1]) + mean(turns[t+1])) / 2)})
	}
	return out
}

// mean returns the mean of xs, NaN for none.
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

func TestTurnRatios(t *testing.T) {
	turns := [][]float64{{100, 100}, {90, 94}, {110, 90}, {}, {100}, {97}}
	got := turnRatios(turns)
	// Turn 1: 92 against (100+100)/2; turn 3 is empty; turn 5 has no
	// turn after it.
	if len(got) != 1 || got[0].turn != 1 || math.Abs(got[0].ratio-0.92) > 1e-9 {
		t.Fatalf("ratios %v, want [0.92]", got)
	}
}

// median returns the median of xs (which it sorts).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// withCollector runs work while a collector (every object) is attached and
// returns its result, the collector process's CPU time and the run time of
// its PostgreSQL eBPF programs meanwhile.
func withCollector(b *testing.B, ctx context.Context, cfg Config, work func() (float64, error), onlyServers ...int) (float64, time.Duration, time.Duration, error) {
	_, stop, err := startCollector(ctx, cfg, onlyServers...)
	if err != nil {
		return 0, 0, 0, err
	}
	defer stop()
	cpu0, err := processCPU()
	if err != nil {
		return 0, 0, 0, err
	}
	before := programStats(mcivPrograms)
	tps, err := work()
	cpu1, err2 := processCPU()
	if err == nil {
		err = err2
	}
	var bpfTime time.Duration
	for name, st := range programStats(mcivPrograms) {
		d := st.Runtime - before[name].Runtime
		n := st.RunCount - before[name].RunCount
		bpfTime += d
		if n > 0 {
			b.Logf("  %-16s %9d runs, %6.0f ns/run", name, n, float64(d.Nanoseconds())/float64(n))
		}
	}
	return tps, cpu1 - cpu0, bpfTime, err
}

// startCollector runs a collector (every object) until stop, and returns
// once it has attached its hooks and found the running servers (only the
// PostgreSQL servers of the postmaster pids onlyServers, if any).
func startCollector(ctx context.Context, cfg Config, onlyServers ...int) (c *Collector, stop func(), err error) {
	c, err = New(cfg, nopPublisher{}, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(onlyServers) > 0 {
		// Other PostgreSQL servers on a shared machine (in the root
		// cgroup, say) would change what this collector attaches.
		c.pgOnly = func(pid int) bool { return slices.Contains(onlyServers, pid) }
	}
	if v := os.Getenv("MCIV_BENCH_SKIP_HOOKS"); v != "" && cfg.PostgresProbes != PostgresProbesUSDT {
		skip := strings.Split(v, ",")
		for i, o := range c.objects {
			hooks := o.hooks
			c.objects[i].hooks = func() []hookSpec {
				return slices.DeleteFunc(hooks(), func(h hookSpec) bool { return slices.Contains(skip, h.name) })
			}
		}
	}
	// MCIV_BENCH_PG_PROBES=query__start,query__done: attach only these
	// PostgreSQL probes, to see what each costs.
	if v := os.Getenv("MCIV_BENCH_PG_PROBES"); v != "" {
		want := strings.Split(v, ",")
		c.pgProbes = slices.DeleteFunc(slices.Clone(pgProbes), func(p pgProbe) bool { return !slices.Contains(want, p.name) })
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	stop = func() { cancel(); <-done }
	select {
	case <-c.Started():
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	}
	if !c.anyAttached() {
		stop()
		return nil, nil, fmt.Errorf("collector attached nothing: %+v", c.Hooks())
	}
	// Loading the objects (the kernel's BTF above all) leaves garbage,
	// which the runtime would collect and hand back to the system in the
	// background while the work runs: do both now, so that the work
	// measures the collector's steady state.
	debug.FreeOSMemory()
	return c, stop, nil
}

// withBpftrace runs work while bpftrace keeps a latency histogram of the
// binary's query__start/query__done probes, as a user would without mciv.
func withBpftrace(b *testing.B, ctx context.Context, binary string, work func() (float64, error)) (float64, error) {
	script := fmt.Sprintf(`usdt:%[1]s:postgresql:query__start { @start[tid] = nsecs; }
usdt:%[1]s:postgresql:query__done /@start[tid]/ { @query_ns = hist(nsecs - @start[tid]); delete(@start[tid]); }`, binary)
	// -B line: bpftrace's "Attaching" line must not sit in a pipe buffer.
	cmd := exec.CommandContext(ctx, "bpftrace", "-B", "line", "-e", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("bpftrace: %w", err)
	}
	defer func() {
		// bpftrace may take its time (or ignore SIGINT while printing
		// its maps): wait a bounded time, then kill it.
		_ = cmd.Process.Signal(os.Interrupt)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Attaching") {
				ready <- nil
				for sc.Scan() { // drain until exit
				}
				return
			}
		}
		ready <- fmt.Errorf("bpftrace exited before attaching")
	}()
	select {
	case err := <-ready:
		if err != nil {
			return 0, err
		}
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("bpftrace did not attach within a minute")
	}
	return work()
}

// processCPU returns this process's user+system CPU time.
func processCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// utime and stime are fields 14 and 15 of stat, 12 and 13 here.
	ut, err1 := strconv.ParseUint(fields[11], 10, 64)
	st, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/self/stat")
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// mcivPrograms are the name prefixes of the collector's eBPF programs (the
// kernel keeps 15 characters of a name).
var mcivPrograms = []string{"pg_query", "db_sock", "db_skb", "tcp_", "inet_sock", "block_rq", "mysql_"}

// programStats sums the statistics of the loaded eBPF programs whose
// name starts with one of prefixes, by name.
func programStats(prefixes []string) map[string]ebpf.ProgramStats {
	out := make(map[string]ebpf.ProgramStats)
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && slices.ContainsFunc(prefixes, func(x string) bool { return strings.HasPrefix(info.Name, x) }) {
			if st, err := p.Stats(); err == nil {
				sum := out[info.Name]
				sum.Runtime += st.Runtime
				sum.RunCount += st.RunCount
				out[info.Name] = sum
			}
		}
		p.Close()
	}
}

// nopPublisher drops every message.
type nopPublisher struct{}

func (nopPublisher) Publish(string, []byte) error { return nil }

// cgroupCPU returns the CPU time the processes of cgroup v2 dir used
// (cpu.stat's usage_usec: the scheduler's exact run time, whether or not
// the cpu controller is on).
func cgroupCPU(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s/cpu.stat: %q: %w", dir, line, err)
			}
			return time.Duration(n) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat: no usage_usec", dir)
}

// BenchmarkQueryHookCost measures what each way of timing PostgreSQL
// queries costs per query, more finely than throughput can on a shared
// machine: two connections run pgbench -S's query (SELECT abalance FROM
// pgbench_accounts WHERE aid = random) as fast as they can, one query in
// flight each, from this process, while two collectors (the default,
// packets; and postgres_probes: socket, the socket tracepoints), both
// running throughout, have their hooks attached in turns of
// MCIV_BENCH_WINDOW_MS (default 250) ms: none, packet, none, socket, none,
// ... The CPU of a turn is the server's (its cgroup's cpu.stat) and the
// client threads' (their own CPU clocks); a turn with hooks is compared
// with the mean CPU per query of the turns without on either side, and
// the median of these ratios (without/with: the throughput kept where the
// CPU is the limit) is reported per collector with its quartiles. Both
// ends run on this host, so the hooks' cost on either side is counted, as
// pgbench's throughput would.
//
// MCIV_BENCH_HOOK_SECONDS: the run's length (default 60).
func BenchmarkQueryHookCost(b *testing.B) {
	seconds := envInt("MCIV_BENCH_HOOK_SECONDS", 60, 5)
	window := time.Duration(envInt("MCIV_BENCH_WINDOW_MS", 250, 50)) * time.Millisecond
	ctx, pg := benchServer(b, time.Duration(seconds)*time.Second+5*time.Minute)
	serverCg := filepath.Join(newCgroupNames("/proc/self/mountinfo").roots[cgroupSockets], cgroupV2Of("/proc", pg.Pid()))
	type variant struct {
		probes string
		p      *probes
		ratios []float64
	}
	variants := []*variant{{probes: PostgresProbesPacket}, {probes: PostgresProbesSocket}}
	for range b.N {
		for _, v := range variants {
			c, stop, err := startCollector(ctx, Config{Cluster: "bench", Host: "pg", PostgresProbes: v.probes}, pg.Pid())
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			for _, h := range c.Hooks() {
				if strings.HasPrefix(h.Name, queryPathHook("")) {
					fmt.Fprintf(os.Stderr, "%s: %s via %s %s\n", v.probes, h.Name, h.Type, h.Note)
				}
			}
			c.mu.Lock()
			v.p = c.attached
			c.mu.Unlock()
			v.p.pause()
		}
		var (
			queries   atomic.Int64
			clientCPU atomic.Int64 // ns
			stopWork  atomic.Bool
			wg        sync.WaitGroup
			workErr   = make(chan error, 2)
		)
		for range 2 {
			conn, err := dialPG(ctx, pg.Port)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			wg.Go(func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				last := threadCPU()
				for i := 0; !stopWork.Load(); i++ {
					if err := conn.query(fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d;", 1+(i*7919)%100000)); err != nil {
						workErr <- err
						return
					}
					now := threadCPU()
					clientCPU.Add(int64(now - last))
					last = now
					queries.Add(1)
				}
			})
		}
		type turn struct {
			v        *variant // nil: no hooks
			perQuery float64  // CPU ns per query
		}
		var turns []turn
		sample := func() (int64, time.Duration) {
			u, err := cgroupCPU(serverCg)
			if err != nil {
				b.Fatal(err)
			}
			return queries.Load(), u + time.Duration(clientCPU.Load())
		}
		end := time.Now().Add(time.Duration(seconds) * time.Second)
		for i := 0; time.Now().Before(end); i++ {
			var v *variant
			if i%2 == 1 {
				v = variants[(i/2)%len(variants)]
				if err := v.p.resume(); err != nil {
					b.Fatal(err)
				}
			}
			// The first tenth of a turn holds the switch: not counted.
			time.Sleep(window / 10)
			q0, c0 := sample()
			time.Sleep(window)
			q1, c1 := sample()
			if v != nil {
				v.p.pause()
			}
			if q1 > q0 {
				turns = append(turns, turn{v, float64(c1-c0) / float64(q1-q0)})
			} else {
				turns = append(turns, turn{v, math.NaN()})
			}
		}
		stopWork.Store(true)
		wg.Wait()
		select {
		case err := <-workErr:
			b.Fatal(err)
		default:
		}
		var without []float64
		for t := 1; t+1 < len(turns); t += 2 {
			a, w, c := turns[t-1].perQuery, turns[t].perQuery, turns[t+1].perQuery
			if math.IsNaN(a) || math.IsNaN(w) || math.IsNaN(c) {
				continue
			}
			turns[t].v.ratios = append(turns[t].v.ratios, (a+c)/2/w)
			without = append(without, a)
		}
		fmt.Fprintf(os.Stderr, "%d queries in %d turns of %s; CPU per query without hooks: median %.1f us\n", queries.Load(), len(turns), window, median(slices.Clone(without))/1000)
		for _, v := range variants {
			if len(v.ratios) == 0 {
				b.Fatalf("no turn with the %s hooks", v.probes)
			}
			sorted := slices.Clone(v.ratios)
			slices.Sort(sorted)
			fmt.Fprintf(os.Stderr, "%s: CPU per query without/with hooks: median %.4f, quartiles %.4f-%.4f, %d turns\n", v.probes, median(slices.Clone(sorted)), quantile(sorted, 0.25), quantile(sorted, 0.75), len(sorted))
			b.ReportMetric(median(sorted), v.probes+"_cpu_ratio")
		}
	}
}

// threadCPU returns the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// pgConn is a minimal PostgreSQL client: trust authentication, simple
// queries, results read and dropped.
type pgConn struct {
	net.Conn
	r *bufio.Reader
}

// dialPG connects to the PostgreSQL on 127.0.0.1:port as postgres.
func dialPG(ctx context.Context, port int) (*pgConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	c := &pgConn{Conn: nc, r: bufio.NewReader(nc)}
	params := "user\x00postgres\x00database\x00postgres\x00\x00"
	msg := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	msg = binary.BigEndian.AppendUint32(msg, 3<<16)
	if _, err := c.Write(append(msg, params...)); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.untilReady(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("postgres startup: %w", err)
	}
	return c, nil
}

// query runs sql with the simple protocol.
func (c *pgConn) query(sql string) error {
	msg := append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, uint32(4+len(sql)+1))...)
	msg = append(append(msg, sql...), 0)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	return c.untilReady()
}

// untilReady reads messages up to ReadyForQuery; an ErrorResponse fails.
func (c *pgConn) untilReady() error {
	var hdr [5]byte
	failed := false
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if _, err := c.r.Discard(n); err != nil {
			return err
		}
		switch hdr[0] {
		case 'E':
			failed = true
		case 'Z':
			if failed {
				return errors.New("postgres: error response")
			}
			return nil
		}
	}
}
