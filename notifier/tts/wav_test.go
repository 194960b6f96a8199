package tts

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	for _, info := range []WAVInfo{
		{AudioFormat: WAVFormatPCM, Channels: 1, SampleRate: 22050, BitsPerSample: 16},
		{AudioFormat: WAVFormatMulaw, Channels: 1, SampleRate: 8000, BitsPerSample: 8},
	} {
		samples := []byte{1, 2, 3, 4, 5}
		data := EncodeWAV(info, samples)
		if len(data)%2 != 0 {
			t.Error("odd file size")
		}
		if n := binary.LittleEndian.Uint32(data[4:8]); int(n) != len(data)-8 {
			t.Errorf("RIFF size %d, file %d", n, len(data))
		}
		gi, gs, err := ParseWAV(data)
		if err != nil {
			t.Fatal(err)
		}
		if gi != info || !bytes.Equal(gs, samples) {
			t.Errorf("got %+v %v, want %+v %v", gi, gs, info, samples)
		}
	}
	mu := EncodeWAV(WAVInfo{AudioFormat: WAVFormatMulaw, Channels: 1, SampleRate: 8000, BitsPerSample: 8}, []byte{0xff})
	if err := CheckWAV(mu, FormatMulaw8k); err != nil {
		t.Error(err)
	}
	if err := CheckWAV(mu, FormatWAV); err == nil {
		t.Error("µ-law accepted as LINEAR16")
	}
}

func TestParseWAVStreamedHeader(t *testing.T) {
	// espeak-ng --stdout cannot seek back, so its sizes are huge.
	data := EncodeWAV(WAVInfo{AudioFormat: WAVFormatPCM, Channels: 1, SampleRate: 22050, BitsPerSample: 16}, []byte{1, 2, 3, 4})
	binary.LittleEndian.PutUint32(data[4:8], 0x7ffff024)
	binary.LittleEndian.PutUint32(data[40:44], 0x7ffff000)
	_, s, err := ParseWAV(data)
	if err != nil || !bytes.Equal(s, []byte{1, 2, 3, 4}) {
		t.Errorf("ParseWAV = %v, %v", s, err)
	}
}

func TestParseWAVErrors(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":   nil,
		"not wav": []byte("OggS0000000000000000"),
		"no fmt":  []byte("RIFF\x04\x00\x00\x00WAVE"),
		"no data": EncodeWAV(WAVInfo{AudioFormat: 1, Channels: 1, SampleRate: 8000, BitsPerSample: 16}, nil)[:36],
	} {
		if _, _, err := ParseWAV(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
