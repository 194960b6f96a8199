package analyzer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/rules"
)

// Reload re-reads the rules files (Config.RulePaths), as on SIGHUP. When
// every file is valid the new rules apply at once, keeping the alert
// state of the rules whose definition did not change; otherwise the last
// good rules stay, and the errors are logged, returned and exported
// (mciv_analyzer_rules_last_reload_success 0). It returns the result:
// ReloadApplied or ReloadRejected.
func (a *Analyzer) Reload() (string, error) {
	return a.reload(true)
}

// ReloadIfChanged reloads the rules files if their contents changed since
// they were last loaded or rejected; otherwise it returns ReloadUnchanged.
func (a *Analyzer) ReloadIfChanged() (string, error) {
	return a.reload(false)
}

func (a *Analyzer) reload(force bool) (string, error) {
	if len(a.cfg.RulePaths) == 0 {
		return ReloadUnchanged, errors.New("analyzer: no rules files to reload (the rules are built in)")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	hash := hashFiles(a.cfg.RulePaths)
	if !force && hash == a.filesHash {
		return ReloadUnchanged, nil
	}
	a.filesHash = hash // a rejected version is not retried until it changes
	set, err := rules.LoadFiles(a.cfg.RulePaths...)
	if err != nil {
		a.m.reloads.WithLabelValues(ReloadRejected).Inc()
		a.m.reloadOK.Set(0)
		var list rules.Errors
		if errors.As(err, &list) {
			for _, e := range list {
				a.log.Error("rules reload rejected: keeping the last good rules", "err", e.Error())
			}
		} else {
			a.log.Error("rules reload rejected: keeping the last good rules", "err", err)
		}
		return ReloadRejected, fmt.Errorf("analyzer: rules reload rejected: %w", err)
	}
	a.apply(set)
	a.advise(set)
	return ReloadApplied, nil
}

// apply swaps in a new, valid rule set.
func (a *Analyzer) apply(set *rules.Set) {
	var names []string
	for _, r := range set.Rules() {
		names = append(names, r.Alert)
	}
	a.mu.Lock()
	eng := eval.New(set, a.cfg.evalOptions())
	kept := eng.Adopt(a.engine)
	a.engine, a.set = eng, set
	a.m.setRules(names)
	for i, c := range eng.Active() {
		a.m.activeGauges[i][0].Set(float64(c.Pending))
		a.m.activeGauges[i][1].Set(float64(c.Firing))
	}
	a.mu.Unlock()
	a.m.reloads.WithLabelValues(ReloadApplied).Inc()
	a.m.reloadOK.Set(1)
	a.m.reloadTime.Set(float64(a.cfg.Now().UnixNano()) / 1e9)
	a.log.Info("rules reloaded", "rules", set.NumRules(), "groups", set.NumGroups(), "state_kept", kept)
	if a.cfg.OnReload != nil {
		a.cfg.OnReload(set)
	}
}

// hashFiles hashes the names and contents of the rules files of paths, and
// any error listing or reading them, so that any change shows.
func hashFiles(paths []string) string {
	h := sha256.New()
	files, err := rules.ListFiles(paths...)
	if err != nil {
		fmt.Fprintf(h, "error %v\n", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(h, "file %q error %v\n", f, err)
			continue
		}
		fmt.Fprintf(h, "file %q %d\n", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}
