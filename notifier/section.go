package notifier

import (
	"errors"

	"github.com/mciv/mciv/notifier/inhibit"
	"github.com/mciv/mciv/notifier/route"
)

// Section is the `notifier:` section of mciv's configuration.
type Section struct {
	// Enabled switches Marvel off in `mciv up` when false (absent: on).
	Enabled *bool `yaml:"enabled"`
	// Durable is the JetStream consumer name shared by notifier replicas.
	Durable string `yaml:"durable"`
	// Route is the routing tree (label matchers to receivers, grouping);
	// absent: every alert to the default receiver (slack.channel).
	Route *route.Route `yaml:"route"`
	// Receivers are the destinations routes name.
	Receivers []route.Receiver `yaml:"receivers"`
	// InhibitRules mute alerts made redundant by others; absent: a
	// critical alert mutes the warnings of the same host; [] for none.
	InhibitRules []inhibit.Rule `yaml:"inhibit_rules"`
}

// DefaultSection is the notifier section used when the file has none.
func DefaultSection() Section { return Section{Durable: "mciv-notifier"} }

// On reports whether the notifier runs (enabled absent or true).
func (s Section) On() bool { return s.Enabled == nil || *s.Enabled }

// Validate checks the section's values; a routing error is a
// *route.Error with the place in the file.
func (s Section) Validate() error {
	var errs []error
	if _, err := route.New(s.Route, s.Receivers); err != nil {
		errs = append(errs, err)
	}
	if s.Durable == "" {
		errs = append(errs, errors.New("notifier.durable must not be empty"))
	}
	return errors.Join(errs...)
}
