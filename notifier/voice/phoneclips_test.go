package voice

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mciv/mciv/notifier/tts"
)

func TestPhoneClips(t *testing.T) {
	eng := &fakeEngine{}
	var pc *PhoneClips
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pc.Handler().ServeHTTP(w, r) }))
	defer srv.Close()
	var err error
	pc, err = NewPhoneClips(eng, t.TempDir(), srv.URL+"/", tts.Request{Voice: "v"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := pc.URL(t.Context(), "Critical. Disk full.")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, srv.URL+ClipsPath) || !strings.HasSuffix(u, ".wav") {
		t.Fatalf("URL %s", u)
	}
	again, _ := pc.URL(t.Context(), "Critical. Disk full.")
	if again != u || len(eng.texts) != 1 {
		t.Errorf("second URL %s (first %s), %d syntheses; want the same clip, spoken once", again, u, len(eng.texts))
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "audio:Critical. Disk full." || resp.Header.Get("Content-Type") != "audio/wav" {
		t.Errorf("GET %s: %d %q %s", u, resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	for _, bad := range []string{"../voice.go", strings.Repeat("0", 64) + ".wav", "x.wav"} {
		resp, err := http.Get(srv.URL + ClipsPath + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", bad, resp.StatusCode)
		}
	}
}
