// Package ear checks synthesized speech by ear in tests: it converts a clip
// to 16 kHz mono 16-bit WAV with sox and runs pocketsphinx's keyword
// spotting on it (Debian packages sox, pocketsphinx, pocketsphinx-en-us).
//
// Free transcription of espeak-ng's voice is poor, but keyword spotting
// reliably hears words that were said and, as importantly, not words that
// were not, so a test can fail.
package ear

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/lab/testenv"
)

// Debian's pocketsphinx-en-us model (pocketsphinx 0.8+5prealpha, Debian 12).
const (
	modelDir = "/usr/share/pocketsphinx/model/en-us/en-us"
	dictFile = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"
)

// Threshold is the keyword-spotting threshold used for every keyword:
// tried on espeak-ng's en-us voice, it hears "critical" and "alert" in
// "Critical alert on host d b 1" and nothing in unrelated sentences.
const Threshold = "1e-20"

// Require skips t (fails it in CI) unless sox, pocketsphinx_continuous and
// the en-us model are installed.
func Require(t testing.TB) {
	t.Helper()
	testenv.RequireCommand(t, "sox", "pocketsphinx_continuous")
	testenv.RequireFile(t, modelDir, "the pocketsphinx en-us model (Debian package pocketsphinx-en-us)")
	testenv.RequireFile(t, dictFile, "the pocketsphinx en-us dictionary (Debian package pocketsphinx-en-us)")
}

// Hear returns how often each keyword was spotted in clip (any format sox
// reads: WAV, µ-law WAV, MP3, Ogg), and pocketsphinx's raw output for the
// test log.
func Hear(t testing.TB, clip []byte, ext string, keywords ...string) (map[string]int, string) {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "clip"+ext)
	wav := filepath.Join(dir, "16k.wav")
	kws := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(in, clip, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), "sox", in, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", wav).CombinedOutput(); err != nil {
		t.Fatalf("sox to 16 kHz: %v: %s", err, out)
	}
	var words strings.Builder
	for _, k := range keywords {
		fmt.Fprintf(&words, "%s /%s/\n", strings.ToLower(k), Threshold)
	}
	if err := os.WriteFile(kws, []byte(words.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "pocketsphinx_continuous",
		"-infile", wav, "-kws", kws, "-hmm", modelDir, "-dict", dictFile, "-logfn", os.DevNull)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pocketsphinx_continuous: %v: %s", err, stderr.String())
	}
	heard := map[string]int{}
	for _, w := range strings.Fields(string(out)) {
		heard[w]++
	}
	return heard, strings.TrimSpace(string(out))
}
