package escalation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config is the `oncall:` section of mciv's configuration:
//
//	oncall:
//	  people:
//	    - {name: alice, phone: "+15551230001", slack: U0ALICE}
//	    - {name: bob,   phone: "+15551230002", slack: U0BOB}
//	    - {name: carol, phone: "+15551230003"}
//	  rotations:
//	    - name: primary
//	      people: [alice, bob]          # in turn, one shift each
//	      handoff: "2026-01-05 09:00"   # a shift change, in time_zone
//	      length: 168h                  # one week (whole days keep the local hour across DST)
//	      time_zone: Europe/Berlin
//	    - name: secondary
//	      people: [bob, carol]
//	      handoff: "2026-01-05 09:00"
//	      length: 168h
//	      time_zone: Europe/Berlin
//	  overrides:
//	    - {rotation: primary, person: carol, start: "2026-12-24 00:00", end: "2026-12-27 00:00"}
//	  policies:
//	    - name: critical
//	      match: {severity: critical}   # labels; first matching policy wins
//	      steps:
//	        - {after: 0m,  call: [primary]}
//	        - {after: 10m, call: [secondary]}
//	        - {after: 20m, call: [everyone]}
//	      repeat: 1                     # run the steps once more ...
//	      repeat_after: 10m             # ... 10m after the last one
//	  quotas:
//	    per_person_per_hour: 6
//	    per_person_per_alert: 4
//
// A step's after is measured from the moment the alert started firing
// here; call names rotations (their current on-call person), people, or
// "everyone".
type Config struct {
	People    []Person   `yaml:"people"`
	Rotations []Rotation `yaml:"rotations"`
	Overrides []Override `yaml:"overrides"`
	Policies  []Policy   `yaml:"policies"`
	Quotas    Quotas     `yaml:"quotas"`
}

// Person is somebody who can be called.
type Person struct {
	Name string `yaml:"name"`
	// Phone is E.164 ("+15551230001").
	Phone string `yaml:"phone"`
	// Slack is the person's Slack user id, mentioned in thread replies.
	Slack string `yaml:"slack"`
}

// Rotation hands the on-call duty from one person to the next every
// Length, at the Handoff time of day in TimeZone.
type Rotation struct {
	Name   string   `yaml:"name"`
	People []string `yaml:"people"`
	// Handoff is one moment when the first person's shift started,
	// "2006-01-02 15:04" in TimeZone (or RFC 3339).
	Handoff string `yaml:"handoff"`
	// Length of a shift; default 168h (a week).
	Length time.Duration `yaml:"length"`
	// TimeZone is an IANA zone ("Europe/Berlin"); default UTC.
	TimeZone string `yaml:"time_zone"`
}

// Override puts Person on call for Rotation from Start to End (in the
// rotation's time zone, "2006-01-02 15:04", or RFC 3339).
type Override struct {
	Rotation string `yaml:"rotation"`
	Person   string `yaml:"person"`
	Start    string `yaml:"start"`
	End      string `yaml:"end"`
}

// Policy says whom to call when, for the alerts it matches.
type Policy struct {
	Name string `yaml:"name"`
	// Match selects alerts by label equality; empty matches every alert
	// with severity "critical".
	Match map[string]string `yaml:"match"`
	Steps []Step            `yaml:"steps"`
	// Repeat is how many more times the steps run when nobody
	// acknowledged; 0 runs them once.
	Repeat int `yaml:"repeat"`
	// RepeatAfter is the pause after the last step before a repeat;
	// default 10m.
	RepeatAfter time.Duration `yaml:"repeat_after"`
}

// Step calls people after the alert has been unacknowledged for After.
type Step struct {
	After time.Duration `yaml:"after"`
	// Call names rotations, people, or "everyone".
	Call []string `yaml:"call"`
}

// Quotas bound the calls to one person, so that a flapping rule cannot
// call someone a hundred times. Calls over a quota are not placed; they
// are counted, logged and said in the thread.
type Quotas struct {
	// PerPersonPerHour bounds calls to one person in any hour, all alerts
	// together; default 6.
	PerPersonPerHour int `yaml:"per_person_per_hour"`
	// PerPersonPerAlert bounds calls to one person about one firing of
	// one alert; default 3.
	PerPersonPerAlert int `yaml:"per_person_per_alert"`
}

// Defaults.
const (
	DefaultLength            = 7 * 24 * time.Hour
	DefaultRepeatAfter       = 10 * time.Minute
	DefaultPerPersonPerHour  = 6
	DefaultPerPersonPerAlert = 3
	// Everyone is the call target for every configured person.
	Everyone = "everyone"
)

// Enabled reports whether anyone can be called.
func (c Config) Enabled() bool { return len(c.People) > 0 && len(c.Policies) > 0 }

// Validate checks the section; an empty one is valid (no escalation).
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// schedule is a validated Config, ready to answer who is on call.
type schedule struct {
	people    map[string]Person
	order     []string // people in configuration order
	rotations map[string]*rotation
	policies  []Policy
	quotas    Quotas
}

type rotation struct {
	Rotation
	loc       *time.Location
	handoff   time.Time
	overrides []override
}

type override struct {
	person     string
	start, end time.Time
}

// compile validates c and prepares it.
func compile(c Config) (*schedule, error) {
	s := &schedule{people: map[string]Person{}, rotations: map[string]*rotation{}, quotas: c.Quotas}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("oncall: "+format, args...)) }
	for i, p := range c.People {
		switch {
		case p.Name == "":
			bad("people[%d]: name is required", i)
			continue
		case p.Name == Everyone:
			bad("people[%d]: %q is reserved", i, Everyone)
		case s.people[p.Name].Name != "":
			bad("people: %q twice", p.Name)
		}
		if !strings.HasPrefix(p.Phone, "+") || len(p.Phone) < 4 {
			bad("person %s: phone %q: want E.164 (+15551230001)", p.Name, p.Phone)
		}
		s.people[p.Name] = p
		s.order = append(s.order, p.Name)
	}
	for i, r := range c.Rotations {
		if r.Name == "" {
			bad("rotations[%d]: name is required", i)
			continue
		}
		if _, dup := s.rotations[r.Name]; dup || s.people[r.Name].Name != "" || r.Name == Everyone {
			bad("rotation %q: name used twice (rotations, people and %q share one namespace)", r.Name, Everyone)
		}
		rot := &rotation{Rotation: r}
		if rot.Length == 0 {
			rot.Length = DefaultLength
		}
		if rot.Length < time.Minute {
			bad("rotation %s: length %s is too short", r.Name, rot.Length)
		}
		var err error
		if rot.loc, err = time.LoadLocation(r.TimeZone); err != nil {
			bad("rotation %s: time_zone: %v", r.Name, err)
			rot.loc = time.UTC
		}
		if rot.handoff, err = parseTime(r.Handoff, rot.loc); err != nil {
			bad("rotation %s: handoff: %v", r.Name, err)
		}
		if len(r.People) == 0 {
			bad("rotation %s: no people", r.Name)
		}
		for _, p := range r.People {
			if s.people[p].Name == "" {
				bad("rotation %s: unknown person %q", r.Name, p)
			}
		}
		s.rotations[r.Name] = rot
	}
	for i, o := range c.Overrides {
		rot := s.rotations[o.Rotation]
		if rot == nil {
			bad("overrides[%d]: unknown rotation %q", i, o.Rotation)
			continue
		}
		if s.people[o.Person].Name == "" {
			bad("overrides[%d]: unknown person %q", i, o.Person)
		}
		start, err1 := parseTime(o.Start, rot.loc)
		end, err2 := parseTime(o.End, rot.loc)
		if err := errors.Join(err1, err2); err != nil {
			bad("overrides[%d]: %v", i, err)
			continue
		}
		if !end.After(start) {
			bad("overrides[%d]: end is not after start", i)
		}
		rot.overrides = append(rot.overrides, override{o.Person, start, end})
	}
	for i, p := range c.Policies {
		if p.Name == "" {
			p.Name = fmt.Sprintf("policy-%d", i+1)
		}
		if p.RepeatAfter == 0 {
			p.RepeatAfter = DefaultRepeatAfter
		}
		if len(p.Steps) == 0 {
			bad("policy %s: no steps", p.Name)
		}
		if p.Repeat < 0 || p.RepeatAfter < 0 {
			bad("policy %s: repeat and repeat_after must not be negative", p.Name)
		}
		for j, st := range p.Steps {
			if st.After < 0 || (j > 0 && st.After < p.Steps[j-1].After) {
				bad("policy %s: step %d: after %s: steps must not go back in time", p.Name, j+1, st.After)
			}
			if len(st.Call) == 0 {
				bad("policy %s: step %d calls nobody", p.Name, j+1)
			}
			for _, t := range st.Call {
				if t != Everyone && s.people[t].Name == "" && s.rotations[t] == nil {
					bad("policy %s: step %d: %q is neither a rotation, a person nor %q", p.Name, j+1, t, Everyone)
				}
			}
		}
		s.policies = append(s.policies, p)
	}
	if s.quotas.PerPersonPerHour == 0 {
		s.quotas.PerPersonPerHour = DefaultPerPersonPerHour
	}
	if s.quotas.PerPersonPerAlert == 0 {
		s.quotas.PerPersonPerAlert = DefaultPerPersonPerAlert
	}
	if s.quotas.PerPersonPerHour < 0 || s.quotas.PerPersonPerAlert < 0 {
		bad("quotas must not be negative")
	}
	return s, errors.Join(errs...)
}

// parseTime reads "2006-01-02 15:04" in loc, or RFC 3339.
func parseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.ParseInLocation("2006-01-02 15:04", s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want \"2006-01-02 15:04\" or RFC 3339", s)
	}
	return t, nil
}

// policyFor returns the first policy matching labels.
func (s *schedule) policyFor(labels map[string]string) (Policy, bool) {
	for _, p := range s.policies {
		match := p.Match
		if len(match) == 0 {
			match = map[string]string{"severity": "critical"}
		}
		ok := true
		for k, v := range match {
			if !strings.EqualFold(labels[k], v) {
				ok = false
				break
			}
		}
		if ok {
			return p, true
		}
	}
	return Policy{}, false
}

// policy returns the policy named name.
func (s *schedule) policy(name string) (Policy, bool) {
	i := slices.IndexFunc(s.policies, func(p Policy) bool { return p.Name == name })
	if i < 0 {
		return Policy{}, false
	}
	return s.policies[i], true
}

// onCall returns who is on call for rotation r at t.
func (r *rotation) onCall(t time.Time) string {
	for _, o := range r.overrides {
		if !t.Before(o.start) && t.Before(o.end) {
			return o.person
		}
	}
	return r.People[r.shift(t)%len(r.People)]
}

// shift returns the number of the shift t falls into, counted from the
// handoff (negative shifts wrap around the people). Lengths of whole days
// count calendar days in the rotation's zone, so that the handoff stays at
// the same local hour across daylight saving changes.
func (r *rotation) shift(t time.Time) int {
	if r.Length%(24*time.Hour) != 0 {
		n := int(floorDiv(int64(t.Sub(r.handoff)), int64(r.Length)))
		return mod(n, len(r.People))
	}
	days := int(r.Length / (24 * time.Hour))
	lt := t.In(r.loc)
	h := r.handoff.In(r.loc)
	// whole calendar days between the handoff's date and t's date
	d := int(dateOnly(lt).Sub(dateOnly(h)).Hours() / 24)
	n := int(floorDiv(int64(d), int64(days)))
	// Before the handoff time of day on a handoff date, it is the previous shift.
	if start := h.AddDate(0, 0, n*days); lt.Before(start) {
		n--
	}
	return mod(n, len(r.People))
}

func dateOnly(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, n int) int { return ((a % n) + n) % n }

// resolve returns the people a step's targets name at t, each once, in
// order.
func (s *schedule) resolve(targets []string, t time.Time) []Person {
	var out []Person
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, s.people[name])
		}
	}
	for _, target := range targets {
		switch {
		case target == Everyone:
			for _, n := range s.order {
				add(n)
			}
		case s.rotations[target] != nil:
			add(s.rotations[target].onCall(t))
		default:
			add(target)
		}
	}
	return out
}

// OnCall reports who is on call for each rotation at t (for a status
// command or the thread).
func (c Config) OnCall(t time.Time) (map[string]string, error) {
	s, err := compile(c)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, r := range s.rotations {
		out[name] = r.onCall(t)
	}
	return out, nil
}
