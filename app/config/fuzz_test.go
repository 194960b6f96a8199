package config

import "testing"

// FuzzDecode: a configuration file never panics the decoder or Validate.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("cluster: c\nhost: h\nnats: {url: nats://x:4222, creds: /etc/mciv/{role}.creds, tls: {ca_file: /x}}\n"))
	f.Add([]byte("failover: {enabled: true, approvers: [U1], clusters: {c: {endpoints: ['http://a:8008']}}}\n"))
	f.Add([]byte("notifier: {route: {receiver: r}, receivers: [{name: r}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if err := decode("fuzz.yaml", data, &cfg); err == nil {
			_ = cfg.Validate()
		}
	})
}
