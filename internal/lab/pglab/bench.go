package pglab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/lab/labproc"
)

// InitBench creates pgbench's tables at the given scale (pgbench -i).
func (s *Server) InitBench(ctx context.Context, scale int) error {
	args := append(s.connArgs(), "-i", "-q", "-s", strconv.Itoa(scale), "postgres")
	_, err := s.pgbench(ctx, args...)
	return err
}

// tpsLine is pgbench's throughput line.
var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// SelectOnly runs pgbench's built-in select-only workload (-S) with
// clients connections for d and returns transactions per second.
func (s *Server) SelectOnly(ctx context.Context, clients int, d time.Duration) (float64, error) {
	out, err := s.pgbench(ctx, s.selectOnlyArgs(clients, d)...)
	if err != nil {
		return 0, err
	}
	return parseTPS(out)
}

// selectOnlyArgs are pgbench's arguments for the select-only workload,
// with extra options before the database name.
func (s *Server) selectOnlyArgs(clients int, d time.Duration, extra ...string) []string {
	args := append(s.connArgs(), "-n", "-S", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(clients),
		"-T", strconv.Itoa(int(d.Seconds())))
	return append(append(args, extra...), "postgres")
}

// parseTPS reads the throughput from pgbench's output.
func parseTPS(out string) (float64, error) {
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in output: %s", labproc.Tail([]byte(out)))
	}
	return strconv.ParseFloat(m[1], 64)
}

// progressLine is one of pgbench's progress reports (-P).
var progressLine = regexp.MustCompile(`^progress: [0-9.]+ s, ([0-9.]+) tps`)

// SelectOnlyProgress runs the workload of SelectOnly with a progress
// report every second, and calls each with the throughput of every second
// as its report arrives (on the goroutine that reads them; pgbench goes on
// meanwhile). It returns the throughput of the whole run.
func (s *Server) SelectOnlyProgress(ctx context.Context, clients int, d time.Duration, each func(tps float64)) (float64, error) {
	args := s.selectOnlyArgs(clients, d, "-P", "1")
	cmd, release, err := s.pgbenchCommand(ctx, args...)
	if err != nil {
		return 0, err
	}
	defer release()
	var out bytes.Buffer
	cmd.Stdout = &out
	progress, err := cmd.StderrPipe()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("pgbench: %w", err)
	}
	var rest strings.Builder
	readErr := readProgress(progress, each, &rest)
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("pgbench %s: %w: %s", strings.Join(args, " "), err, labproc.Tail([]byte(rest.String())))
	}
	if readErr != nil {
		return 0, fmt.Errorf("pgbench progress: %w", readErr)
	}
	return parseTPS(out.String())
}

// readProgress calls each with the throughput of every progress report
// in r, and copies the other lines to rest.
func readProgress(r io.Reader, each func(tps float64), rest io.Writer) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := progressLine.FindStringSubmatch(sc.Text())
		if m == nil {
			fmt.Fprintln(rest, sc.Text())
			continue
		}
		tps, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return fmt.Errorf("%q: %w", sc.Text(), err)
		}
		each(tps)
	}
	return sc.Err()
}
