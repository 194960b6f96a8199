// Package googletest is a fake Google Cloud Text-to-Speech server for
// tests: a real gRPC server on 127.0.0.1 that implements SynthesizeSpeech
// as the API does (validation, WAV-wrapped LINEAR16 and MULAW, audio that
// depends on the request) and records each request, so that the real
// client library can be tested against it. It can be told to fail with a
// gRPC code or to hang until the caller gives up.
package googletest

import (
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/mciv/mciv/notifier/tts"
)

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	texttospeechpb.UnimplementedTextToSpeechServer

	lis net.Listener
	gs  *grpc.Server

	mu       sync.Mutex
	requests []*texttospeechpb.SynthesizeSpeechRequest
	fail     *status.Status
	hang     bool
}

// New starts a fake on 127.0.0.1 on a free port; Close stops it.
func New() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("googletest: %w", err)
	}
	s := &Server{lis: lis, gs: grpc.NewServer()}
	texttospeechpb.RegisterTextToSpeechServer(s.gs, s)
	go s.gs.Serve(lis) //nolint:errcheck // returns when stopped
	return s, nil
}

// Start is New for a test: it fails tb on error and stops the server when
// the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := New()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server, ending hanging calls.
func (s *Server) Close() { s.gs.Stop() }

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// ClientOptions returns the options that point the real client library at
// this server: its endpoint, no authentication, and plaintext gRPC (without
// the last, the client refuses to dial without transport security).
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// FailWith makes every following call fail with code (codes.Unavailable,
// codes.PermissionDenied, ...); codes.OK makes calls succeed again.
func (s *Server) FailWith(code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == codes.OK {
		s.fail = nil
		return
	}
	s.fail = status.Newf(code, "googletest: told to fail with %s", code)
}

// Hang makes every following call wait until the caller gives up (or the
// server closes), or, with false, answer again.
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// Requests returns copies of the SynthesizeSpeech requests received, in
// order, including those that were made to fail.
func (s *Server) Requests() []*texttospeechpb.SynthesizeSpeechRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*texttospeechpb.SynthesizeSpeechRequest, len(s.requests))
	for i, r := range s.requests {
		out[i] = proto.Clone(r).(*texttospeechpb.SynthesizeSpeechRequest)
	}
	return out
}

// Calls returns the number of SynthesizeSpeech requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// SynthesizeSpeech implements the API method.
func (s *Server) SynthesizeSpeech(ctx context.Context, req *texttospeechpb.SynthesizeSpeechRequest) (*texttospeechpb.SynthesizeSpeechResponse, error) {
	s.mu.Lock()
	s.requests = append(s.requests, proto.Clone(req).(*texttospeechpb.SynthesizeSpeechRequest))
	fail, hang := s.fail, s.hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if fail != nil {
		return nil, fail.Err()
	}
	if err := validate(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	data, err := Audio(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &texttospeechpb.SynthesizeSpeechResponse{AudioContent: data}, nil
}

// validate rejects what the real API rejects with InvalidArgument.
func validate(req *texttospeechpb.SynthesizeSpeechRequest) error {
	in := req.GetInput()
	text, ssml := in.GetText(), in.GetSsml()
	switch {
	case text == "" && ssml == "":
		return errors.New("either input.text or input.ssml should be set")
	case len(text)+len(ssml) > 5000:
		return fmt.Errorf("input size limit exceeded: %d bytes, limit 5000", len(text)+len(ssml))
	case req.GetVoice().GetLanguageCode() == "":
		return errors.New("voice.language_code is required")
	case req.GetAudioConfig().GetAudioEncoding() == texttospeechpb.AudioEncoding_AUDIO_ENCODING_UNSPECIFIED:
		return errors.New("audio_config.audio_encoding is required")
	}
	if r := req.GetAudioConfig().GetSpeakingRate(); r != 0 && (r < 0.25 || r > 2) {
		return fmt.Errorf("speaking_rate %g is outside [0.25, 2.0]", r)
	}
	if name := req.GetVoice().GetName(); name != "" && !strings.HasPrefix(name, req.GetVoice().GetLanguageCode()+"-") {
		return fmt.Errorf("voice %q does not speak language %q", name, req.GetVoice().GetLanguageCode())
	}
	if ssml != "" {
		if err := checkSSML(ssml); err != nil {
			return fmt.Errorf("invalid SSML: %w", err)
		}
	}
	return nil
}

// checkSSML requires well-formed XML with a <speak> root element.
func checkSSML(doc string) error {
	d := xml.NewDecoder(strings.NewReader(doc))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "speak" {
		return fmt.Errorf("root element is %q, want speak", root)
	}
	return nil
}

// Audio returns the fake's deterministic audio for req: for LINEAR16 and
// MULAW a WAV file (as the API returns them) holding a short tone whose
// pitch depends on the input and voice; for MP3 and OGG_OPUS bytes with the
// right magic numbers; for PCM the raw samples.
func Audio(req *texttospeechpb.SynthesizeSpeechRequest) ([]byte, error) {
	h := fnv.New32a()
	io.WriteString(h, req.GetInput().GetText()+"\x00"+req.GetInput().GetSsml()+"\x00"+req.GetVoice().GetName())
	sum := h.Sum32()
	freq := 300 + float64(sum%500)
	ac := req.GetAudioConfig()
	rate := int(ac.GetSampleRateHertz())
	if rate == 0 {
		rate = 24000
	}
	switch enc := ac.GetAudioEncoding(); enc {
	case texttospeechpb.AudioEncoding_LINEAR16, texttospeechpb.AudioEncoding_PCM:
		pcm := tone(freq, rate)
		if enc == texttospeechpb.AudioEncoding_PCM {
			return pcm, nil
		}
		return tts.EncodeWAV(tts.WAVInfo{AudioFormat: tts.WAVFormatPCM, Channels: 1, SampleRate: uint32(rate), BitsPerSample: 16}, pcm), nil
	case texttospeechpb.AudioEncoding_MULAW:
		pcm := tone(freq, rate)
		mu := make([]byte, len(pcm)/2)
		for i := range mu {
			mu[i] = mulaw(int16(binary.LittleEndian.Uint16(pcm[2*i:])))
		}
		return tts.EncodeWAV(tts.WAVInfo{AudioFormat: tts.WAVFormatMulaw, Channels: 1, SampleRate: uint32(rate), BitsPerSample: 8}, mu), nil
	case texttospeechpb.AudioEncoding_MP3:
		return binary.BigEndian.AppendUint32([]byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xf3\x44\xc4"), sum), nil
	case texttospeechpb.AudioEncoding_OGG_OPUS:
		return binary.BigEndian.AppendUint32([]byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00OpusHead\x01\x01"), sum), nil
	default:
		return nil, fmt.Errorf("googletest: encoding %s not supported by the fake", enc)
	}
}

// tone returns 0.25 s of a sine at freq Hz as 16-bit little-endian PCM.
func tone(freq float64, rate int) []byte {
	n := rate / 4
	out := make([]byte, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
	}
	return out
}

// mulaw encodes one sample with G.711 µ-law.
func mulaw(s int16) byte {
	const bias, clip = 0x84, 32635
	x := int(s)
	sign := 0
	if x < 0 {
		x, sign = -x, 0x80
	}
	x = min(x, clip) + bias
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (x >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}
