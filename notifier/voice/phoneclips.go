package voice

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/mciv/mciv/notifier/tts"
)

// ClipsPath is where PhoneClips serves clips: GET ClipsPath + name.
const ClipsPath = "/voice/clips/"

// PhoneClips makes the audio of phone calls: it speaks a text as µ-law
// 8 kHz WAV (what telephony plays without resampling), keeps it in a
// directory under a name that cannot be guessed (an HMAC of the text with
// a key of this process), and serves it over HTTP so that a phone provider
// can fetch it for <Play>. The escalation engine uses it through its
// Clips interface; without it calls use the provider's own <Say>.
type PhoneClips struct {
	engine  tts.Engine
	dir     string
	baseURL string
	key     []byte
	req     tts.Request
}

// NewPhoneClips returns PhoneClips that synthesizes with engine (a chain),
// keeps clips in dir and hands out URLs under publicURL (the externally
// reachable base of Handler, e.g. the Twilio public_url). req sets the
// voice, language and rate; its Text and Format are ignored.
func NewPhoneClips(engine tts.Engine, dir, publicURL string, req tts.Request) (*PhoneClips, error) {
	if engine == nil || dir == "" || publicURL == "" {
		return nil, errors.New("voice: phone clips need an engine, a directory and a public URL")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("voice: phone clip directory: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("voice: phone clip key: %w", err)
	}
	return &PhoneClips{engine: engine, dir: dir, baseURL: strings.TrimSuffix(publicURL, "/"), key: key, req: req}, nil
}

// URL speaks text (or finds it spoken before) and returns the URL of the
// clip.
func (p *PhoneClips) URL(ctx context.Context, text string) (string, error) {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(text))
	name := hex.EncodeToString(m.Sum(nil)) + tts.FormatMulaw8k.Ext()
	path := filepath.Join(p.dir, name)
	if _, err := os.Stat(path); err != nil {
		req := p.req
		req.Text, req.SSML, req.Format = text, false, tts.FormatMulaw8k
		a, err := p.engine.Synthesize(ctx, req)
		if err != nil {
			return "", fmt.Errorf("voice: phone clip: %w", err)
		}
		if _, err := writeIfChanged(path, a.Data); err != nil {
			return "", fmt.Errorf("voice: phone clip: %w", err)
		}
	}
	return p.baseURL + ClipsPath + name, nil
}

var clipName = regexp.MustCompile(`^[0-9a-f]{64}\.wav$`)

// Handler serves GET ClipsPath{name}; names that PhoneClips did not make
// are not found.
func (p *PhoneClips) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ClipsPath+"{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !clipName.MatchString(name) {
			http.NotFound(w, r)
			return
		}
		data, err := os.ReadFile(filepath.Join(p.dir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", tts.FormatMulaw8k.MIMEType())
		w.Header().Set("Cache-Control", "private, max-age=3600")
		_, _ = w.Write(data)
	})
	return mux
}
