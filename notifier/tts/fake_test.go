package tts

import (
	"context"
	"errors"
	"sync/atomic"
)

// fakeEngine is a scripted Engine for chain tests.
type fakeEngine struct {
	name      string
	err       error // fail with this
	hang      bool  // wait until the context ends
	ignoreCtx chan struct{}
	calls     atomic.Int32
	format    Format // of the audio returned; 0: the requested one
}

func (f *fakeEngine) Name() string { return f.name }

func (f *fakeEngine) Synthesize(ctx context.Context, req Request) (Audio, error) {
	f.calls.Add(1)
	switch {
	case f.ignoreCtx != nil:
		<-f.ignoreCtx
		return Audio{}, errors.New("released")
	case f.hang:
		<-ctx.Done()
		return Audio{}, ctx.Err()
	case f.err != nil:
		return Audio{}, f.err
	}
	format := f.format
	if format == 0 {
		format = req.Format
	}
	return NewAudio([]byte(f.name+":"+req.Text), format, f.name), nil
}
