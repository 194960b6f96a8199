// Package chart draws the picture that goes beside a firing alert in Slack:
// the anomalous series over the last minutes, the band between its baseline
// and the alert threshold, and a line at the moment the alert fired — a PNG
// drawn in Go with gonum.org/v1/plot.
//
// The notifier does not receive samples with alerts, so a Recorder
// subscribes to the collectors' sample batches (mciv.samples.>) and keeps a
// short ring of recent values per host and signal; Chart looks the alert's
// host and signal up in it.
package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Point is one value of a series at a time.
type Point struct {
	T time.Time
	V float64
}

// Spec is what to draw.
type Spec struct {
	Title     string
	YLabel    string
	Points    []Point
	Baseline  float64
	Threshold float64
	FiredAt   time.Time
}

// Size of the PNG.
const (
	Width  = 8 * vg.Inch
	Height = 3.5 * vg.Inch
)

// Render draws the spec as a PNG.
func Render(s Spec) ([]byte, error) {
	if len(s.Points) == 0 {
		return nil, errors.New("chart: no points")
	}
	t0 := s.Points[0].T
	if !s.FiredAt.IsZero() && s.FiredAt.Before(t0) {
		t0 = s.FiredAt
	}
	secs := func(t time.Time) float64 { return t.Sub(t0).Seconds() }

	p := plot.New()
	p.Title.Text = s.Title
	p.X.Label.Text = "seconds since " + t0.UTC().Format("15:04:05 UTC")
	p.Y.Label.Text = s.YLabel
	p.Add(plotter.NewGrid())

	xs := make(plotter.XYs, len(s.Points))
	lo, hi := s.Points[0].V, s.Points[0].V
	for i, pt := range s.Points {
		xs[i].X, xs[i].Y = secs(pt.T), pt.V
		lo, hi = min(lo, pt.V), max(hi, pt.V)
	}
	x0, x1 := xs[0].X, xs[len(xs)-1].X
	if x1 <= x0 {
		x1 = x0 + 1
	}

	// The band between the baseline and the threshold: where the series
	// belongs.
	bl, th := min(s.Baseline, s.Threshold), max(s.Baseline, s.Threshold)
	if th > bl {
		band, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: bl}, {X: x1, Y: bl}, {X: x1, Y: th}, {X: x0, Y: th}})
		if err != nil {
			return nil, fmt.Errorf("chart: band: %w", err)
		}
		band.Color = color.NRGBA{R: 120, G: 200, B: 120, A: 90}
		band.LineStyle.Width = 0
		p.Add(band)
		p.Legend.Add(fmt.Sprintf("baseline %s – threshold %s", notifier.FormatValue(s.Baseline), notifier.FormatValue(s.Threshold)), band)
		lo, hi = min(lo, bl), max(hi, th)
	}

	line, err := plotter.NewLine(xs)
	if err != nil {
		return nil, fmt.Errorf("chart: series: %w", err)
	}
	line.Color = color.RGBA{R: 200, G: 30, B: 30, A: 255}
	line.Width = vg.Points(1.5)
	p.Add(line)
	p.Legend.Add("value", line)

	if !s.FiredAt.IsZero() {
		fx := secs(s.FiredAt)
		pad := (hi - lo) * 0.05
		if pad == 0 {
			pad = 1
		}
		fired, err := plotter.NewLine(plotter.XYs{{X: fx, Y: lo - pad}, {X: fx, Y: hi + pad}})
		if err != nil {
			return nil, fmt.Errorf("chart: fired line: %w", err)
		}
		fired.Color = color.Black
		fired.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(fired)
		p.Legend.Add("fired", fired)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)

	wt, err := p.WriterTo(Width, Height, "png")
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("chart: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// Chart draws the chart of a firing alert from the recorder's samples; it
// returns nil, nil when the recorder has no samples for the alert's host
// and signal.
func (r *Recorder) Chart(_ context.Context, a *wire.Alert) ([]byte, error) {
	pts := r.Points(a.Labels[notifier.LabelCluster], a.Labels[notifier.LabelHost], a.Signal)
	if len(pts) == 0 {
		return nil, nil
	}
	title := a.Rule
	if h := a.Labels[notifier.LabelHost]; h != "" {
		title += " on " + h
	}
	ylabel := a.Signal
	if a.Stat != "" {
		ylabel = a.Signal + " (per second)"
	}
	return Render(Spec{Title: title, YLabel: ylabel, Points: pts, Baseline: a.Baseline, Threshold: a.Threshold, FiredAt: a.StartsAt})
}
