package pglab

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/mciv/mciv/internal/labproc"
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
	args := append(s.connArgs(), "-n", "-S", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(clients),
		"-T", strconv.Itoa(int(d.Seconds())), "postgres")
	out, err := s.pgbench(ctx, args...)
	if err != nil {
		return 0, err
	}
	return parseTPS(out)
}

// parseTPS reads the throughput from pgbench's output.
func parseTPS(out string) (float64, error) {
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in output: %s", labproc.Tail([]byte(out)))
	}
	return strconv.ParseFloat(m[1], 64)
}
