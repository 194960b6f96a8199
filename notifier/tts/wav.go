package tts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// WAV audio format codes (the fmt chunk's wFormatTag).
const (
	WAVFormatPCM   = 1 // linear PCM (LINEAR16 when 16-bit)
	WAVFormatALaw  = 6 // G.711 A-law
	WAVFormatMulaw = 7 // G.711 µ-law
)

// WAVInfo is what a WAV file's fmt chunk says.
type WAVInfo struct {
	AudioFormat   uint16 // WAVFormatPCM, WAVFormatMulaw, ...
	Channels      uint16
	SampleRate    uint32
	BitsPerSample uint16
}

// ParseWAV reads a RIFF/WAVE file and returns its format and the samples
// of its data chunk. It accepts the header that programs writing to a pipe
// leave behind (espeak-ng --stdout): sizes that are too large are clamped
// to the data present.
func ParseWAV(data []byte) (WAVInfo, []byte, error) {
	var info WAVInfo
	if len(data) < 12 || !bytes.Equal(data[0:4], []byte("RIFF")) || !bytes.Equal(data[8:12], []byte("WAVE")) {
		return info, nil, errors.New("wav: not a RIFF/WAVE file")
	}
	haveFmt := false
	p := 12
	for p+8 <= len(data) {
		id := string(data[p : p+4])
		size := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		body := p + 8
		end := body + size
		if size < 0 || end > len(data) || end < body {
			end = len(data)
		}
		switch id {
		case "fmt ":
			if end-body < 16 {
				return info, nil, errors.New("wav: fmt chunk too short")
			}
			f := data[body:end]
			info.AudioFormat = binary.LittleEndian.Uint16(f[0:2])
			info.Channels = binary.LittleEndian.Uint16(f[2:4])
			info.SampleRate = binary.LittleEndian.Uint32(f[4:8])
			info.BitsPerSample = binary.LittleEndian.Uint16(f[14:16])
			haveFmt = true
		case "data":
			if !haveFmt {
				return info, nil, errors.New("wav: data chunk before fmt chunk")
			}
			return info, data[body:end], nil
		}
		p = end + (end-body)%2 // chunks are padded to an even size
	}
	if !haveFmt {
		return info, nil, errors.New("wav: no fmt chunk")
	}
	return info, nil, errors.New("wav: no data chunk")
}

// EncodeWAV returns a canonical WAV file holding samples in the format
// info describes.
func EncodeWAV(info WAVInfo, samples []byte) []byte {
	pcm := info.AudioFormat == WAVFormatPCM
	fmtSize := 16
	extra := 0 // fact chunk for non-PCM formats
	if !pcm {
		fmtSize = 18
		extra = 12
	}
	var b bytes.Buffer
	total := 4 + (8 + fmtSize) + extra + (8 + len(samples)) + len(samples)%2
	b.Grow(8 + total)
	le := binary.LittleEndian
	b.WriteString("RIFF")
	b.Write(le.AppendUint32(nil, uint32(total)))
	b.WriteString("WAVEfmt ")
	b.Write(le.AppendUint32(nil, uint32(fmtSize)))
	blockAlign := info.Channels * ((info.BitsPerSample + 7) / 8)
	b.Write(le.AppendUint16(nil, info.AudioFormat))
	b.Write(le.AppendUint16(nil, info.Channels))
	b.Write(le.AppendUint32(nil, info.SampleRate))
	b.Write(le.AppendUint32(nil, info.SampleRate*uint32(blockAlign)))
	b.Write(le.AppendUint16(nil, blockAlign))
	b.Write(le.AppendUint16(nil, info.BitsPerSample))
	if !pcm {
		b.Write(le.AppendUint16(nil, 0)) // cbSize
		b.WriteString("fact")
		b.Write(le.AppendUint32(nil, 4))
		frames := 0
		if blockAlign > 0 {
			frames = len(samples) / int(blockAlign)
		}
		b.Write(le.AppendUint32(nil, uint32(frames)))
	}
	b.WriteString("data")
	b.Write(le.AppendUint32(nil, uint32(len(samples))))
	b.Write(samples)
	if len(samples)%2 == 1 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// CheckWAV reports whether data is a WAV file holding audio of format f
// (FormatWAV: 16-bit PCM; FormatMulaw8k: 8 kHz mono µ-law) with at least
// one sample.
func CheckWAV(data []byte, f Format) error {
	info, samples, err := ParseWAV(data)
	if err != nil {
		return err
	}
	switch f {
	case FormatWAV:
		if info.AudioFormat != WAVFormatPCM || info.BitsPerSample != 16 {
			return fmt.Errorf("wav: want 16-bit PCM, have format %d with %d bits", info.AudioFormat, info.BitsPerSample)
		}
	case FormatMulaw8k:
		if info.AudioFormat != WAVFormatMulaw || info.SampleRate != 8000 || info.Channels != 1 {
			return fmt.Errorf("wav: want µ-law 8000 Hz mono, have format %d at %d Hz, %d channels", info.AudioFormat, info.SampleRate, info.Channels)
		}
	default:
		return fmt.Errorf("wav: %s is not a WAV format", f)
	}
	if len(samples) == 0 {
		return errors.New("wav: no samples")
	}
	return nil
}
