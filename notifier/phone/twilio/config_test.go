package twilio

import (
	"fmt"
	"strings"
	"testing"
)

func TestConfigSecretsHidden(t *testing.T) {
	c := Config{AccountSID: "AC0123456789", AuthToken: "s3cr3t", From: "+15551230000", PublicURL: "https://m.example"}
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c), c.LogValue().String()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "0123456789") {
			t.Errorf("%q shows a secret", s)
		}
	}
	if !c.Enabled() || c.Validate() != nil {
		t.Errorf("Enabled %v, Validate %v", c.Enabled(), c.Validate())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil || (Config{}).Enabled() {
		t.Errorf("empty config: %v", err)
	}
	err := Config{AccountSID: "XX1", From: "5551230000", PublicURL: "ftp://x"}.Validate()
	for _, want := range []string{"auth_token", "start with AC", "E.164", "public_url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %s", err, want)
		}
	}
}
