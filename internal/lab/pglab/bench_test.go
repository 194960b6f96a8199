package pglab

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseTPS(t *testing.T) {
	out := "latency average = 0.1 ms\ninitial connection time = 2.5 ms\ntps = 12345.678901 (without initial connection time)\n"
	if v, err := parseTPS(out); err != nil || v != 12345.678901 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := parseTPS("nothing"); err == nil {
		t.Fatal("no error")
	}
}

func TestReadProgress(t *testing.T) {
	in := "pgbench (15.14)\n" +
		"progress: 1.0 s, 39522.9 tps, lat 0.050 ms stddev 0.010, 0 failed\n" +
		"progress: 2.0 s, 40001.5 tps, lat 0.049 ms stddev 0.009, 0 failed\n" +
		"some warning\n"
	var got []float64
	var rest strings.Builder
	if err := readProgress(strings.NewReader(in), func(tps float64) { got = append(got, tps) }, &rest); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 39522.9 || got[1] != 40001.5 {
		t.Fatalf("reports %v", got)
	}
	if rest.String() != "pgbench (15.14)\nsome warning\n" {
		t.Fatalf("rest %q", rest.String())
	}
}

func TestSelectOnlyProgress(t *testing.T) {
	ctx, s := benchServer(t)
	var reports []float64
	tps, err := s.SelectOnlyProgress(ctx, 1, 3*time.Second, func(v float64) { reports = append(reports, v) })
	if err != nil || tps <= 0 {
		t.Fatalf("tps %v, %v", tps, err)
	}
	if len(reports) < 2 || len(reports) > 3 {
		t.Fatalf("%d progress reports in 3 s: %v", len(reports), reports)
	}
	for _, v := range reports {
		if v <= 0 {
			t.Fatalf("reports %v", reports)
		}
	}
}

func TestSelectOnly(t *testing.T) {
	ctx, s := benchServer(t)
	tps, err := s.SelectOnly(ctx, 1, time.Second)
	if err != nil || tps <= 0 {
		t.Fatalf("tps %v, %v", tps, err)
	}
}

// benchServer starts a server with pgbench's tables, stopped at the end of
// the test, and a context that ends with it.
func benchServer(t *testing.T) (context.Context, *Server) {
	t.Helper()
	require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	if err := s.InitBench(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return ctx, s
}
