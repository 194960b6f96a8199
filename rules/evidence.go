package rules

import (
	"fmt"
	"math"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultEvidenceMaxWeight is the largest factor by which a strong
// anomaly's batch counts more than its covered time, when a rule's
// evidence does not say max_weight.
const DefaultEvidenceMaxWeight = 4

// EvidenceWindowFactor bounds an evidence run: evidence that has not
// become enough within EvidenceWindowFactor × need of its first
// supporting batch is dropped, so that rare unrelated blips never add up.
const EvidenceWindowFactor = 4

// Evidence is a rule's `evidence:` option, the alternative to `for`: the
// alert fires once the detector's verdicts have accumulated Need of
// supporting time, each supporting batch counting its covered time
// (the batch's interval) multiplied by how far the value is past the
// detector's threshold (at least 1, at most MaxWeight), and once the
// condition has persisted for Min after the batch it was first seen in.
// A large change thus fires after Min, a change just past the threshold
// after Need, and a lone batch, however strong, not at all (when Min > 0).
//
//	evidence: {need: 1s, min: 500ms, max_weight: 4}
//
// One quiet batch between supporting ones does not break a run (TCP's
// retransmit back-off leaves such gaps in a lasting fault); two in a row
// do, and so does a run that is not enough after EvidenceWindowFactor ×
// Need.
type Evidence struct {
	// Need is the weighted supporting time needed to fire.
	Need time.Duration
	// Min is how long the condition must have persisted to fire: the
	// covered time after the run's first supporting batch up to the end
	// of the latest, a quiet batch the run survived included (a lasting
	// fault's gaps are part of it; a blip's support ends with it).
	Min time.Duration
	// MaxWeight caps the factor a strong anomaly's batch is weighted by
	// (≥ 1; 0 means DefaultEvidenceMaxWeight).
	MaxWeight float64
}

// String formats the option as it is written in a rules file.
func (e Evidence) String() string {
	return fmt.Sprintf("{need: %s, min: %s, max_weight: %g}", e.Need, e.Min, e.maxWeight())
}

func (e Evidence) maxWeight() float64 {
	if e.MaxWeight <= 0 {
		return DefaultEvidenceMaxWeight
	}
	return e.MaxWeight
}

// Window is how long one evidence run may take to become enough.
func (e Evidence) Window() time.Duration { return EvidenceWindowFactor * e.Need }

// Strength is the factor a supporting batch's covered time is weighted
// by: how far value v is from the detector's baseline compared with how
// far its threshold is, clamped to [1, MaxWeight]. For a static threshold
// (baseline 0) of 5/s, a rate of 20/s has strength 4. Without a usable
// threshold (NaN value, threshold equal to the baseline, a value on the
// threshold's near side) the strength is 1.
func (e Evidence) Strength(v, threshold, baseline float64) float64 {
	s := 1.0
	span := threshold - baseline
	if !math.IsNaN(v) && !math.IsInf(v, 0) && span != 0 && !math.IsNaN(span) && !math.IsInf(span, 0) {
		if r := (v - baseline) / span; r > 1 {
			s = r
		}
	}
	return min(s, e.maxWeight())
}

// EvidenceRun is the evidence one alert group has accumulated. The zero
// value holds none. It is pure: the caller passes each batch's covered
// time and the detector's verdict.
type EvidenceRun struct {
	// Weight is the weighted supporting time so far.
	Weight time.Duration
	// Support is the plain supporting time so far.
	Support time.Duration
	// First is the covered time of the run's first supporting batch.
	First time.Duration
	// Span is the covered time since the run's first supporting batch,
	// quiet batches included: at a supporting batch, Span - First is how
	// long the condition has persisted since it was first seen.
	Span time.Duration
	// Quiet counts the quiet batches in a row at the end of the run.
	Quiet int
}

// Step adds one batch of covered time d: supporting (the detector fired)
// with the given strength (see Evidence.Strength), or quiet. It reports
// whether the run is now enough to fire; the caller then calls Reset.
func (r *EvidenceRun) Step(e Evidence, d time.Duration, supporting bool, strength float64) bool {
	if d < 0 {
		d = 0
	}
	if !supporting {
		if r.Support == 0 {
			return false
		}
		r.Quiet++
		r.Span += d
		if r.Quiet > 1 {
			r.Reset()
		}
		return false
	}
	strength = min(max(strength, 1), e.maxWeight())
	// Too slow to add up: start again from this batch. A first batch
	// longer than the window (a replayed 5-minute series against a 30s
	// need) is not slowness: the run goes on from it.
	if r.Support > 0 && r.Span >= e.Window() && r.Span > r.First {
		r.Reset()
	}
	if r.Support == 0 {
		r.First = d
	}
	r.Quiet = 0
	r.Span += d
	r.Support += d
	r.Weight += time.Duration(float64(d) * strength)
	return r.Weight >= e.Need && r.Span-r.First >= e.Min
}

// Condition is what a rule's alert lifecycle steps on: the detector's
// verdict firing for a rule without evidence (e nil) and for an alert
// already firing (it stays so while the detector fires, then for
// keep_firing_for); otherwise whether run, stepped with this batch of
// covered time d and value v judged against threshold and baseline, is
// now enough (the run then starts afresh, so that a later alert needs
// evidence of its own).
func (e *Evidence) Condition(run *EvidenceRun, alreadyFiring, firing bool, d time.Duration, v, threshold, baseline float64) bool {
	if e == nil || alreadyFiring {
		return firing
	}
	if !run.Step(*e, d, firing, e.Strength(v, threshold, baseline)) {
		return false
	}
	run.Reset()
	return true
}

// Reset drops the run's evidence.
func (r *EvidenceRun) Reset() { *r = EvidenceRun{} }

// evidenceKeys are the keys of an evidence mapping.
func evidenceKeys() []string { return []string{"need", "min", "max_weight"} }

// evidence reads a rule's `evidence:` option; nil when absent.
func (p *parser) evidence(fs map[string]field, w where) *Evidence {
	f, ok := fs["evidence"]
	if !ok || isNull(f.val) {
		return nil
	}
	if f.val.Kind != yaml.MappingNode {
		p.errorf(f.val, w, "evidence must be a mapping such as {need: 1s, min: 500ms}, not %s", kindName(f.val))
		return nil
	}
	efs := p.mapping(f.val, w, "evidence", evidenceKeys())
	if efs == nil {
		return nil
	}
	ev := &Evidence{}
	bad := len(p.errs)
	if nf, ok := p.required(efs, f.val, w, "evidence: ", "need"); ok {
		ev.Need = p.duration(map[string]field{"evidence.need": nf}, w, "evidence.need")
		if ev.Need <= 0 && len(p.errs) == bad {
			p.errorf(nf.val, w, "evidence.need must be positive")
		}
	}
	if mf, ok := efs["min"]; ok && !isNull(mf.val) {
		ev.Min = p.duration(map[string]field{"evidence.min": mf}, w, "evidence.min")
		if ev.Need > 0 && ev.Min > ev.Need {
			p.errorf(mf.val, w, "evidence.min %s must not exceed evidence.need %s", ev.Min, ev.Need)
		}
	}
	if wf, ok := efs["max_weight"]; ok && !isNull(wf.val) {
		if v, ok := p.number(wf.val, w, "evidence.max_weight"); ok {
			if v < 1 {
				p.errorf(wf.val, w, "evidence.max_weight must be at least 1, not %g", v)
			} else {
				ev.MaxWeight = v
			}
		}
	}
	if ev.MaxWeight == 0 {
		ev.MaxWeight = DefaultEvidenceMaxWeight
	}
	if fk, ok := fs["for"]; ok && !isNull(fk.val) {
		p.errorf(fk.key, w, "for and evidence are alternatives: say one (evidence at line %d)", f.key.Line)
	}
	return ev
}
