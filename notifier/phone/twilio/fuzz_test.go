package twilio

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
)

// FuzzCallbackForm: a gather or status callback whose form is anything,
// signed with the account's token, never panics the handler; it is
// answered 200 or 204 (handled), 400 (bad form) or 403 (another account).
func FuzzCallbackForm(f *testing.F) {
	const public = "https://mciv.example/"
	p, err := New(Options{Config: Config{AccountSID: sid, AuthToken: token, From: "+15551230000", PublicURL: public}})
	if err != nil {
		f.Fatal(err)
	}
	h := p.Handler(&recorder{})
	f.Add(false, "AccountSid="+sid+"&CallSid=CA1&Digits=1&CallStatus=in-progress")
	f.Add(true, "AccountSid="+sid+"&CallSid=CA1&CallStatus=completed&CallDuration=42")
	f.Add(true, "CallDuration=-99999999999999999999&CallSid=%ff")
	f.Add(false, "AccountSid=AC999&Digits=1")
	f.Add(false, "%zz=&;;&&=")
	f.Fuzz(func(t *testing.T, status bool, body string) {
		path := GatherPath
		if status {
			path = StatusPath
		}
		form, _ := url.ParseQuery(body)
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(SignatureHeader, twiliotest.Signature(token, strings.TrimSuffix(public, "/")+path, form))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusNoContent, http.StatusBadRequest, http.StatusForbidden:
		default:
			t.Fatalf("answered %d", w.Code)
		}
	})
}
