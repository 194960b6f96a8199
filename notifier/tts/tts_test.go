package tts

import "testing"

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		f               Format
		name, mime, ext string
	}{
		{FormatOggOpus, "ogg-opus", "audio/ogg", ".ogg"},
		{FormatMP3, "mp3", "audio/mpeg", ".mp3"},
		{FormatWAV, "wav", "audio/wav", ".wav"},
		{FormatMulaw8k, "mulaw-8k", "audio/wav", ".wav"},
		{FormatOggVorbis, "ogg-vorbis", "audio/ogg", ".ogg"},
	} {
		if tc.f.String() != tc.name || tc.f.MIMEType() != tc.mime || tc.f.Ext() != tc.ext {
			t.Errorf("%d: %s %s %s", tc.f, tc.f, tc.f.MIMEType(), tc.f.Ext())
		}
		if p, err := ParseFormat(tc.name); err != nil || p != tc.f {
			t.Errorf("ParseFormat(%q) = %v, %v", tc.name, p, err)
		}
	}
	if _, err := ParseFormat("flac"); err == nil {
		t.Error("flac parsed")
	}
	for name, want := range map[string]Format{"a.ogg": FormatOggOpus, "b.MP3": FormatMP3, "/tmp/c.wav": FormatWAV, "d.ulaw": FormatMulaw8k} {
		if f, err := FormatForFile(name); err != nil || f != want {
			t.Errorf("FormatForFile(%q) = %v, %v", name, f, err)
		}
	}
	for _, name := range []string{"noext", "x.flac"} {
		if _, err := FormatForFile(name); err == nil {
			t.Errorf("FormatForFile(%q) accepted", name)
		}
	}
}

func TestNormalize(t *testing.T) {
	r, err := Request{Text: "x"}.Normalize()
	if err != nil || r.Format != FormatOggOpus || r.Rate != 1 {
		t.Errorf("Normalize = %+v, %v", r, err)
	}
}
