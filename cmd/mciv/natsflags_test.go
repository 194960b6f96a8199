package main

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestNATSFlagsURL(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "MCIV_NATS_URL" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", defaultNATSURL},
		{nil, "nats://bus:4222", "nats://bus:4222"},
		{[]string{"--nats", "nats://flag:4222"}, "nats://bus:4222", "nats://flag:4222"},
	} {
		var f natsFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.add(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := f.URL(env(tc.env)); got != tc.want {
			t.Errorf("args %v env %q: URL %q, want %q", tc.args, tc.env, got, tc.want)
		}
	}
}
