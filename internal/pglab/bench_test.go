package pglab

import (
	"context"
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

func TestSelectOnly(t *testing.T) {
	require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.InitBench(ctx, 1); err != nil {
		t.Fatal(err)
	}
	tps, err := s.SelectOnly(ctx, 1, time.Second)
	if err != nil || tps <= 0 {
		t.Fatalf("tps %v, %v", tps, err)
	}
}
