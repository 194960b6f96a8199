// Command mciv watches database hosts from the kernel, detects anomalies
// with statistical rules, and tells the on-call engineer (Slack, voice,
// phone) or acts (guarded failover). One binary: `mciv up` runs it all.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr, os.Getenv).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mciv:", err)
		if code, ok := err.(exitCode); ok {
			os.Exit(int(code))
		}
		os.Exit(1)
	}
}

// exitCode is an error that only sets the exit status (its message was printed).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// env carries what every command needs instead of globals.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	logLevel       string
	configPath     string
}

func (e *env) logger() *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(e.logLevel))
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

func newRoot(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:           "mciv",
		Short:         "mciv keeps databases reliable: eBPF signals, anomaly rules, Slack and voice alerts, guarded failover",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(
		upCmd(e), partCmd(e, "collector"), partCmd(e, "analyzer"), partCmd(e, "notifier"),
		doctorCmd(e), tailCmd(e), demoCmd(e), rulesCmd(e), replayCmd(e), recordCmd(e), sayCmd(e), silenceCmd(e),
		failoverCmd(e), steerCmd(e), evalCmd(e), authCmd(e), ackCmd(e),
	)
	return root
}
