package speech

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestSSML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Critical. Latency 1.2 seconds on host d b 1.",
			"<speak><s>Critical.</s><s>Latency 1.2 seconds on host d b 1.</s></speak>"},
		{`Disk <sda> & "journal" isn't well`,
			"<speak><s>Disk &lt;sda&gt; &amp; &quot;journal&quot; isn&apos;t well</s></speak>"},
		{"  Two\n lines?  Yes! ", "<speak><s>Two lines?</s><s>Yes!</s></speak>"},
		{"", "<speak></speak>"},
	} {
		got := SSML(tc.in)
		if got != tc.want {
			t.Errorf("SSML(%q)\n got  %s\n want %s", tc.in, got, tc.want)
		}
		// Whatever the text, the result is well-formed XML whose text is
		// the input's words.
		var doc struct {
			S []string `xml:"s"`
		}
		if err := xml.Unmarshal([]byte(got), &doc); err != nil {
			t.Errorf("SSML(%q) is not XML: %v", tc.in, err)
		}
		if words := strings.Join(doc.S, " "); words != strings.Join(strings.Fields(tc.in), " ") {
			t.Errorf("SSML(%q) says %q", tc.in, words)
		}
	}
}

func TestSSMLCannotInject(t *testing.T) {
	got := SSML(`</s></speak><audio src="http://x/"/>`)
	if strings.Contains(got, "<audio") || strings.Count(got, "<speak>") != 1 {
		t.Errorf("markup injected: %s", got)
	}
}
