package escalation

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const exampleYAML = `
people:
  - {name: alice, phone: "+15551230001", slack: U0ALICE}
  - {name: bob,   phone: "+15551230002", slack: U0BOB}
  - {name: carol, phone: "+15551230003"}
rotations:
  - name: primary
    people: [alice, bob]
    handoff: "2026-01-05 09:00"
    length: 168h
    time_zone: Europe/Berlin
  - name: secondary
    people: [bob, carol]
    handoff: "2026-01-05 09:00"
    length: 168h
    time_zone: Europe/Berlin
overrides:
  - {rotation: primary, person: carol, start: "2026-12-24 00:00", end: "2026-12-27 00:00"}
policies:
  - name: critical
    match: {severity: critical}
    steps:
      - {after: 5m,  call: [primary]}
      - {after: 15m, call: [secondary]}
      - {after: 25m, call: [everyone]}
quotas:
  per_person_per_hour: 6
  per_person_per_alert: 3
`

func exampleConfig(t *testing.T) Config {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(exampleYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRotation(t *testing.T) {
	c := exampleConfig(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		at               string
		primary, seconds string
	}{
		{"2026-01-05 09:00", "alice", "bob"},
		{"2026-01-12 08:59", "alice", "bob"},
		{"2026-01-12 09:00", "bob", "carol"},
		{"2026-01-19 09:00", "alice", "bob"},
		{"2026-01-05 08:59", "bob", "carol"}, // before the first handoff: the shift before
		// Across the daylight saving change (29 March 2026) the handoff stays at 09:00 local.
		{"2026-03-30 08:59", "bob", "carol"},
		{"2026-03-30 09:00", "alice", "bob"},
		{"2026-12-25 12:00", "carol", "bob"}, // override of primary
		{"2026-12-27 00:00", "alice", "bob"},
	} {
		at, err := time.ParseInLocation("2006-01-02 15:04", tc.at, berlin)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.OnCall(at)
		if err != nil {
			t.Fatal(err)
		}
		if got["primary"] != tc.primary || got["secondary"] != tc.seconds {
			t.Errorf("%s: on call %v, want primary %s, secondary %s", tc.at, got, tc.primary, tc.seconds)
		}
	}
}

func TestShortRotation(t *testing.T) {
	s, err := compile(Config{
		People:    []Person{{Name: "a", Phone: "+1000"}, {Name: "b", Phone: "+1001"}, {Name: "c", Phone: "+1002"}},
		Rotations: []Rotation{{Name: "r", People: []string{"a", "b", "c"}, Handoff: "2026-01-01T00:00:00Z", Length: 8 * time.Hour}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for off, want := range map[time.Duration]string{0: "a", 8 * time.Hour: "b", 16 * time.Hour: "c", 24 * time.Hour: "a", -time.Hour: "c"} {
		if got := s.rotations["r"].onCall(h.Add(off)); got != want {
			t.Errorf("at +%s: %s, want %s", off, got, want)
		}
	}
}

func TestResolveTargets(t *testing.T) {
	s, err := compile(exampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)
	var names []string
	for _, p := range s.resolve([]string{"primary", "alice", "everyone"}, at) {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "alice,bob,carol" {
		t.Errorf("resolve = %v", names)
	}
	if p, ok := s.policyFor(map[string]string{"severity": "CRITICAL"}); !ok || p.Name != "critical" || p.RepeatAfter != DefaultRepeatAfter {
		t.Errorf("policyFor critical = %+v, %v", p, ok)
	}
	if _, ok := s.policyFor(map[string]string{"severity": "warning"}); ok {
		t.Error("a warning matched the critical policy")
	}
	if s.quotas.PerPersonPerAlert != 3 || s.quotas.PerPersonPerHour != 6 {
		t.Errorf("quotas %+v", s.quotas)
	}
}

func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil || (Config{}).Enabled() {
		t.Errorf("empty config: %v", err)
	}
	bad := Config{
		People:    []Person{{Name: "alice", Phone: "5551230001"}, {Name: "alice", Phone: "+1555"}},
		Rotations: []Rotation{{Name: "primary", People: []string{"zed"}, Handoff: "monday", TimeZone: "Mars/Olympus"}},
		Overrides: []Override{{Rotation: "nope", Person: "alice"}},
		Policies:  []Policy{{Name: "p", Steps: []Step{{After: 10 * time.Minute, Call: []string{"primary"}}, {After: 5 * time.Minute, Call: []string{"nobody"}}}}},
	}
	err := bad.Validate()
	for _, want := range []string{"E.164", `"alice" twice`, `unknown person "zed"`, "time_zone", "handoff", `unknown rotation "nope"`, "back in time", `"nobody" is neither`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v\nwant %s", err, want)
		}
	}
}
