package twiliotest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	twilioapi "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
)

const (
	sid   = "AC00000000000000000000000000000001"
	token = "secrettoken0123456789"
)

// restClient is the real twilio-go client pointed at s.
func restClient(s *Server, user, pass string) *twilioapi.RestClient {
	c := &client.Client{Credentials: client.NewCredentials(user, pass), HTTPClient: s.HTTPClient()}
	c.SetAccountSid(user)
	return twilioapi.NewRestClientWithParams(twilioapi.ClientParams{Client: c})
}

func TestCreateCallWithTheRealClient(t *testing.T) {
	s := Start(t, sid, token)
	rc := restClient(s, sid, token)
	p := &api.CreateCallParams{}
	p.SetTo("+15551230001").SetFrom("+15551230000").
		SetTwiml(`<Response><Gather numDigits="1" action="https://x.example/twilio/gather"><Say>hi</Say></Gather></Response>`).
		SetStatusCallback("https://x.example/twilio/status").SetStatusCallbackEvent([]string{"ringing", "completed"})
	call, err := rc.Api.CreateCall(p)
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if len(calls) != 1 || call.Sid == nil || *call.Sid != calls[0].SID || *call.Status != "queued" {
		t.Fatalf("call %+v, recorded %+v", call, calls)
	}
	c := calls[0]
	if c.To != "+15551230001" || c.From != "+15551230000" || c.StatusCallback != "https://x.example/twilio/status" ||
		strings.Join(c.StatusEvents, ",") != "ringing,completed" {
		t.Errorf("recorded %+v", c)
	}
	if c.GatherAction() != "https://x.example/twilio/gather" {
		t.Errorf("gather action %q", c.GatherAction())
	}
}

func TestErrors(t *testing.T) {
	s := Start(t, sid, token)
	p := &api.CreateCallParams{}
	p.SetTo("+15551230001").SetFrom("+15551230000").SetTwiml("<Response/>")
	_, err := restClient(s, sid, "wrongtoken").Api.CreateCall(p)
	var te *client.TwilioRestError
	if !asRestError(err, &te) || te.Status != http.StatusUnauthorized || te.Code != 20003 {
		t.Errorf("wrong token: %v", err)
	}
	rc := restClient(s, sid, token)
	_, err = rc.Api.CreateCall((&api.CreateCallParams{}).SetFrom("+1").SetTwiml("<Response/>"))
	if !asRestError(err, &te) || te.Code != 21201 {
		t.Errorf("no To: %v", err)
	}
	s.FailCalls(http.StatusBadRequest, 21211, "Invalid 'To' Phone Number")
	_, err = rc.Api.CreateCall(p)
	if !asRestError(err, &te) || te.Code != 21211 {
		t.Errorf("FailCalls: %v", err)
	}
	s.FailCalls(0, 0, "")
	if _, err := rc.Api.CreateCall(p); err != nil {
		t.Errorf("after FailCalls(0): %v", err)
	}
	if len(s.Calls()) != 1 {
		t.Errorf("%d calls recorded, want 1", len(s.Calls()))
	}
	// Only Twilio's hosts are rewritten.
	if _, err := s.HTTPClient().Get("http://example.com/"); err == nil || !strings.Contains(err.Error(), "not Twilio") {
		t.Errorf("request to another host: %v", err)
	}
}

func asRestError(err error, te **client.TwilioRestError) bool {
	e, ok := err.(*client.TwilioRestError)
	if ok {
		*te = e
	}
	return ok
}

func TestSignatureMatchesTwilioGo(t *testing.T) {
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Digits": {"1234"}, "From": {"+14158675310"}, "To": {"+18005551212"}}
	u := "https://mycompany.com/myapp.php?foo=1&bar=2"
	sig := Signature(token, u, form)
	v := client.NewRequestValidator(token)
	if !v.ValidateBody(u, []byte(form.Encode()), sig) {
		t.Fatalf("twilio-go does not accept our signature %s", sig)
	}
	if v.ValidateBody(u+"&x=1", []byte(form.Encode()), sig) {
		t.Fatal("signature does not cover the URL")
	}
}

func TestPressAndStatusPostSigned(t *testing.T) {
	s := Start(t, sid, token)
	var got []url.Values
	v := client.NewRequestValidator(token)
	var base string
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if !v.ValidateBody(base+r.URL.RequestURI(), []byte(r.PostForm.Encode()), r.Header.Get("X-Twilio-Signature")) {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		got = append(got, r.PostForm)
		_ = json.NewEncoder(w).Encode("ok")
	}))
	defer ep.Close()
	base = ep.URL
	c := Call{SID: "CA1", To: "+1", From: "+2", StatusCallback: ep.URL + "/status",
		Twiml: `<Response><Gather action="` + ep.URL + `/gather?a=1"/></Response>`}
	if r, err := s.Press(t.Context(), c, "1"); err != nil || r.Status != 200 {
		t.Fatalf("Press: %+v, %v", r, err)
	}
	if r, err := s.SendStatus(t.Context(), c, "no-answer"); err != nil || r.Status != 200 {
		t.Fatalf("SendStatus: %+v, %v", r, err)
	}
	if r, _ := s.Post(t.Context(), ep.URL+"/status", url.Values{"CallSid": {"CA1"}}, "forged"); r.Status != http.StatusForbidden {
		t.Errorf("forged post answered %d", r.Status)
	}
	if len(got) != 2 || got[0].Get("Digits") != "1" || got[1].Get("CallStatus") != "no-answer" || got[1].Get("AccountSid") != sid {
		t.Errorf("posted %v", got)
	}
}
