package actuator

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
)

// PatroniDrivers builds one Patroni driver per configured cluster. A
// PasswordEnv is looked up with getenv; the password never reaches a log.
func PatroniDrivers(cfg Config, getenv func(string) string, logger *slog.Logger) (map[string]failover.Driver, error) {
	out := make(map[string]failover.Driver, len(cfg.Clusters))
	names := make([]string, 0, len(cfg.Clusters))
	for name := range cfg.Clusters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pc := cfg.Clusters[name]
		pw := pc.Password
		if pc.PasswordEnv != "" && getenv != nil {
			if v := getenv(pc.PasswordEnv); v != "" {
				pw = v
			}
		}
		d, err := patroni.New(patroni.Config{
			Cluster: name, Endpoints: pc.Endpoints, Username: pc.Username, Password: pw,
			TLS: failover.TLSConfig{CAFile: pc.CAFile, CertFile: pc.CertFile, KeyFile: pc.KeyFile,
				InsecureSkipVerify: pc.InsecureSkipVerify},
			Logger: logger,
		})
		if err != nil {
			return nil, fmt.Errorf("failover cluster %s: %w", name, err)
		}
		out[name] = d
	}
	return out, nil
}
