package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/tts/engines"
)

// sayOptions are the flags of `mciv say`.
type sayOptions struct {
	engine  string
	out     string
	voice   string
	format  string
	noCache bool
}

func sayCmd(e *env) *cobra.Command {
	var o sayOptions
	cmd := &cobra.Command{
		Use:   "say [--engine NAME] [--out FILE] [--voice V] TEXT...",
		Short: "Speak TEXT with the configured text-to-speech engines and write the clip to a file",
		Long: "say speaks TEXT with the engine chain of the voice: section (default google,espeak when " +
			"Google credentials are configured, else espeak) or with --engine, writes the clip to --out " +
			"(its format chosen by the extension: .ogg, .mp3, .wav, .ulaw) or to a temporary file, and " +
			"prints the file's path.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(e.configPath, e.getenv)
			if err != nil {
				return err
			}
			return runSay(cmd, e, cfg, o, strings.Join(args, " "))
		},
	}
	addConfigFlag(cmd, e)
	cmd.Flags().StringVar(&o.engine, "engine", "", "engine or comma-separated engine order (google, espeak); default from the configuration")
	cmd.Flags().StringVar(&o.out, "out", "", "output file; the extension picks the format (default: a temporary .ogg file)")
	cmd.Flags().StringVar(&o.voice, "voice", "", "engine-specific voice (en-US-Neural2-F, en-us+f3)")
	cmd.Flags().StringVar(&o.format, "format", "", "audio format when --out has no known extension: ogg-opus, mp3, wav, mulaw-8k")
	cmd.Flags().BoolVar(&o.noCache, "no-cache", false, "do not use or fill the clip cache under data_dir/voice/cache")
	return cmd
}

// runSay speaks text and prints the clip's path.
func runSay(cmd *cobra.Command, e *env, cfg config.Config, o sayOptions, text string) error {
	ctx := cmd.Context()
	var names []string
	var err error
	if o.engine != "" {
		names, err = engines.ParseNames(o.engine)
	} else {
		names, err = cfg.Voice.EngineNames(e.getenv)
	}
	if err != nil {
		return err
	}
	format, err := sayFormat(cfg, o)
	if err != nil {
		return err
	}
	ecfg := cfg.Voice.EnginesConfig(cfg.DataDir)
	ecfg.NoCache = o.noCache
	ecfg.Logger = e.logger()
	chain, err := engines.NewChain(ctx, names, ecfg)
	if err != nil {
		return err
	}
	defer chain.Close()
	audio, err := chain.Synthesize(ctx, tts.Request{
		Text:     text,
		Voice:    firstNonEmpty(o.voice, cfg.Voice.Voice),
		Language: cfg.Voice.Language,
		Rate:     cfg.Voice.Rate,
		Format:   format,
	})
	if err != nil {
		return err
	}
	path := o.out
	if path == "" {
		f, err := os.CreateTemp("", "mciv-say-*"+audio.Ext)
		if err != nil {
			return fmt.Errorf("say: %w", err)
		}
		path = f.Name()
		_, werr := f.Write(audio.Data)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("say: writing %s: %w", path, err)
		}
	} else if err := os.WriteFile(path, audio.Data, 0o644); err != nil {
		return fmt.Errorf("say: %w", err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if audio.Format != format {
		fmt.Fprintf(e.stderr, "say: %s gave %s instead of %s\n", audio.Engine, audio.Format, format)
	}
	fmt.Fprintf(e.stdout, "%s\n", path)
	fmt.Fprintf(e.stderr, "say: spoken by %s (%s, %d bytes)\n", audio.Engine, audio.Format, len(audio.Data))
	return nil
}

// sayFormat picks the format: --out's extension, else --format, else the
// voice section's format (default Ogg Opus).
func sayFormat(cfg config.Config, o sayOptions) (tts.Format, error) {
	if o.out != "" {
		if f, err := tts.FormatForFile(o.out); err == nil {
			return f, nil
		} else if o.format == "" {
			return tts.FormatUnspecified, err
		}
	}
	if o.format != "" {
		return tts.ParseFormat(o.format)
	}
	return cfg.Voice.ClipFormat()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
