package googletest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mciv/mciv/notifier/tts"
)

// client dials the fake with a plain gRPC client.
func client(t *testing.T, s *Server) texttospeechpb.TextToSpeechClient {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return texttospeechpb.NewTextToSpeechClient(conn)
}

func request(text string, enc texttospeechpb.AudioEncoding) *texttospeechpb.SynthesizeSpeechRequest {
	return &texttospeechpb.SynthesizeSpeechRequest{
		Input:       &texttospeechpb.SynthesisInput{InputSource: &texttospeechpb.SynthesisInput_Text{Text: text}},
		Voice:       &texttospeechpb.VoiceSelectionParams{LanguageCode: "en-US"},
		AudioConfig: &texttospeechpb.AudioConfig{AudioEncoding: enc, SampleRateHertz: 8000},
	}
}

func TestAudioIsDeterministicAndWAVWhereGoogleWrapsIt(t *testing.T) {
	s := Start(t)
	c := client(t, s)
	ctx := t.Context()
	get := func(text string, enc texttospeechpb.AudioEncoding) []byte {
		r, err := c.SynthesizeSpeech(ctx, request(text, enc))
		if err != nil {
			t.Fatal(err)
		}
		return r.GetAudioContent()
	}
	a, b, other := get("x", texttospeechpb.AudioEncoding_MULAW), get("x", texttospeechpb.AudioEncoding_MULAW), get("y", texttospeechpb.AudioEncoding_MULAW)
	if !bytes.Equal(a, b) || bytes.Equal(a, other) {
		t.Error("audio not a function of the request")
	}
	if err := tts.CheckWAV(a, tts.FormatMulaw8k); err != nil {
		t.Error(err)
	}
	if err := tts.CheckWAV(get("x", texttospeechpb.AudioEncoding_LINEAR16), tts.FormatWAV); err != nil {
		t.Error(err)
	}
	if s.Calls() != 4 || s.Requests()[2].GetInput().GetText() != "y" {
		t.Errorf("recorded %d calls: %v", s.Calls(), s.Requests())
	}
}

func TestMulaw(t *testing.T) {
	// G.711 reference points.
	for in, want := range map[int16]byte{0: 0xff, -1: 0x7f, 32767: 0x80, -32768: 0x00} {
		if got := mulaw(in); got != want {
			t.Errorf("mulaw(%d) = %#x, want %#x", in, got, want)
		}
	}
}

func TestFailAndHang(t *testing.T) {
	s := Start(t)
	c := client(t, s)
	s.FailWith(codes.PermissionDenied)
	if _, err := c.SynthesizeSpeech(t.Context(), request("x", texttospeechpb.AudioEncoding_MP3)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("err = %v", err)
	}
	s.FailWith(codes.OK)
	s.Hang(true)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.SynthesizeSpeech(ctx, request("x", texttospeechpb.AudioEncoding_MP3)); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("hang: err = %v", err)
	}
	s.Hang(false)
	if _, err := c.SynthesizeSpeech(t.Context(), request("x", texttospeechpb.AudioEncoding_MP3)); err != nil {
		t.Error(err)
	}
}

func TestValidation(t *testing.T) {
	s := Start(t)
	c := client(t, s)
	for name, mod := range map[string]func(r *texttospeechpb.SynthesizeSpeechRequest){
		"no input":    func(r *texttospeechpb.SynthesizeSpeechRequest) { r.Input = nil },
		"no language": func(r *texttospeechpb.SynthesizeSpeechRequest) { r.Voice.LanguageCode = "" },
		"no encoding": func(r *texttospeechpb.SynthesizeSpeechRequest) { r.AudioConfig.AudioEncoding = 0 },
		"rate":        func(r *texttospeechpb.SynthesizeSpeechRequest) { r.AudioConfig.SpeakingRate = 5 },
		"voice lang":  func(r *texttospeechpb.SynthesizeSpeechRequest) { r.Voice.Name = "de-DE-Wavenet-A" },
		"bad ssml": func(r *texttospeechpb.SynthesizeSpeechRequest) {
			r.Input.InputSource = &texttospeechpb.SynthesisInput_Ssml{Ssml: "<speak>x"}
		},
		"not speak": func(r *texttospeechpb.SynthesizeSpeechRequest) {
			r.Input.InputSource = &texttospeechpb.SynthesisInput_Ssml{Ssml: "<p>x</p>"}
		},
		"too long text": func(r *texttospeechpb.SynthesizeSpeechRequest) {
			r.Input.InputSource = &texttospeechpb.SynthesisInput_Text{Text: string(make([]byte, 5001))}
		},
	} {
		r := request("x", texttospeechpb.AudioEncoding_MP3)
		mod(r)
		if _, err := c.SynthesizeSpeech(t.Context(), r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
}
