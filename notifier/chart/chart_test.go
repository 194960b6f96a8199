package chart

import (
	"bytes"
	"image/png"
	"testing"
	"time"
)

func TestRenderIsAPNG(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var pts []Point
	for i := range 120 {
		v := 1.0
		if i > 80 {
			v = 12
		}
		pts = append(pts, Point{T: t0.Add(time.Duration(i) * time.Second), V: v})
	}
	b, err := Render(Spec{Title: "TCPRetransmitRateHigh on db-1", YLabel: "retransmits/s", Points: pts, Baseline: 1, Threshold: 5, FiredAt: t0.Add(85 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("not a PNG: % x", b[:min(8, len(b))])
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() < 400 || r.Dy() < 150 {
		t.Errorf("image is %v", r)
	}
	if _, err := Render(Spec{}); err == nil {
		t.Error("rendering no points succeeded")
	}
}
