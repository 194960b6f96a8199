// Package command is a failover.Driver that runs a program once per action,
// with the request as JSON on stdin and as MCIV_* environment variables,
// within a timeout, and never runs it twice for one call.
//
// Environment: MCIV_ACTION (switchover|failover), MCIV_CLUSTER, MCIV_FROM,
// MCIV_TO, MCIV_FENCING_TOKEN, MCIV_REASON, MCIV_PRIMARY_CONFIRMED_DEAD
// (true|false). Stdin: the same Payload a webhook receives.
//
// Exit status:
//
//	0       done; stdout may hold JSON {"new_leader": "...", "detail": "..."}
//	2       refused, nothing done (ErrPrecondition)
//	3       tried and failed, leadership did not move (ErrFailed)
//	other   ErrUnknownOutcome, as is being killed at the timeout (with ErrTimeout)
//
// A program that cannot be started yields ErrUnavailable (nothing ran).
// With a TopologyCommand (printing a failover.Topology as JSON) the driver
// prechecks like the Patroni driver and confirms the outcome by polling it.
package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/internal/flow"
	"github.com/mciv/mciv/failover/internal/oneshot"
	"github.com/mciv/mciv/failover/webhook"
)

// Exit codes of the action program.
const (
	ExitRefused = 2
	ExitFailed  = 3
)

// Defaults.
const (
	DefaultTimeout         = 60 * time.Second
	DefaultTopologyTimeout = 10 * time.Second
	DefaultConfirmTimeout  = 60 * time.Second
	DefaultPollInterval    = time.Second
)

// Config configures a command Driver.
type Config struct {
	// Name overrides the driver name in results (default "exec").
	Name string
	// Cluster refuses requests for another cluster; empty accepts any.
	Cluster string
	// Command is the program and its arguments (no shell).
	Command []string
	// TopologyCommand, optional, prints a failover.Topology as JSON.
	TopologyCommand []string
	// Env is added to the minimal environment (PATH, HOME) as KEY=VALUE.
	Env []string
	// Dir is the working directory (default: the current one).
	Dir string
	// Timeout bounds one run of Command; the process group is killed then.
	Timeout         time.Duration
	TopologyTimeout time.Duration
	ConfirmTimeout  time.Duration
	PollInterval    time.Duration
	Logger          *slog.Logger
}

// Driver runs a program per action. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	log    *slog.Logger
	tokens failover.TokenGuard
}

var _ failover.Driver = (*Driver)(nil)

// New returns a Driver for cfg.
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = "exec"
	}
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("exec: no command configured")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.TopologyTimeout, DefaultTopologyTimeout)
	def(&cfg.ConfirmTimeout, DefaultConfirmTimeout)
	def(&cfg.PollInterval, DefaultPollInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, log: cfg.Logger.With("driver", cfg.Name, "cluster", cfg.Cluster)}, nil
}

// Name returns the configured name ("exec").
func (d *Driver) Name() string { return d.cfg.Name }

// Topology runs TopologyCommand; without one it returns an error wrapping
// errors.ErrUnsupported.
func (d *Driver) Topology(ctx context.Context) (failover.Topology, error) {
	fail := func(err error) (failover.Topology, error) {
		return failover.Topology{}, &failover.Error{Driver: d.cfg.Name, Op: "topology", Kind: failover.ErrUnavailable, Err: err}
	}
	if len(d.cfg.TopologyCommand) == 0 {
		return fail(fmt.Errorf("no topology command configured: %w", errors.ErrUnsupported))
	}
	r := d.run(ctx, d.cfg.TopologyCommand, nil, nil, d.cfg.TopologyTimeout)
	if r.err != nil || r.code != 0 || r.timedOut {
		err := fmt.Errorf("topology command: exit %d: %s", r.code, oneshot.Trim(r.stderr))
		if r.timedOut {
			err = fmt.Errorf("%w: %w", failover.ErrTimeout, err)
		}
		return fail(errors.Join(err, r.err))
	}
	var t failover.Topology
	if err := json.Unmarshal(r.stdout, &t); err != nil {
		return fail(fmt.Errorf("topology command: decode: %w", err))
	}
	t.ReadAt = time.Now()
	return t, nil
}

// Switchover runs Command for a switchover from req.From to req.To.
func (d *Driver) Switchover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return d.act(ctx, failover.ActionSwitchover, req)
}

// Failover runs Command for a failover to req.To; it refuses without
// req.PrimaryConfirmedDead.
func (d *Driver) Failover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return d.act(ctx, failover.ActionFailover, req)
}

func (d *Driver) act(ctx context.Context, action failover.Action, req failover.Request) (failover.Result, error) {
	f := flow.Flow{Driver: d.cfg.Name, Cluster: d.cfg.Cluster, Tokens: &d.tokens, Log: d.log,
		ConfirmTimeout: d.cfg.ConfirmTimeout, PollInterval: d.cfg.PollInterval}
	if len(d.cfg.TopologyCommand) > 0 {
		f.Topology = d.Topology
	}
	return f.Act(ctx, action, req, func(ctx context.Context, before failover.Topology) flow.Answer {
		p := webhook.Payload{Version: webhook.PayloadVersion, Action: action, Request: req, SentAt: time.Now().UTC()}
		if f.Topology != nil {
			p.Topology = &before
		}
		stdin, err := json.Marshal(p)
		if err != nil {
			return flow.Answer{Kind: failover.ErrInvalidRequest, Err: fmt.Errorf("encode payload: %w", err)}
		}
		env := []string{
			"MCIV_ACTION=" + string(action),
			"MCIV_CLUSTER=" + req.Cluster,
			"MCIV_FROM=" + req.From,
			"MCIV_TO=" + req.To,
			"MCIV_FENCING_TOKEN=" + strconv.FormatUint(req.FencingToken, 10),
			"MCIV_REASON=" + req.Reason,
			"MCIV_PRIMARY_CONFIRMED_DEAD=" + strconv.FormatBool(req.PrimaryConfirmedDead),
		}
		return d.answer(d.run(ctx, d.cfg.Command, stdin, env, d.cfg.Timeout))
	})
}

// answer maps a run of the action program.
func (d *Driver) answer(r runResult) flow.Answer {
	if !r.started {
		return flow.Answer{Kind: failover.ErrUnavailable, Err: r.err}
	}
	var out webhook.Response
	msg := oneshot.Trim(r.stdout)
	if json.Unmarshal(r.stdout, &out) == nil && out.Detail != "" {
		msg = out.Detail
	}
	if r.code != 0 && len(r.stderr) > 0 {
		msg = strings.TrimSpace(msg + " " + oneshot.Trim(r.stderr))
	}
	a := flow.Answer{Sent: true, Status: r.code, Message: msg, NewLeader: out.NewLeader, Err: r.err}
	switch {
	case r.timedOut:
		a.Kind = failover.ErrUnknownOutcome
		a.Err = errors.Join(fmt.Errorf("%w: killed after %s", failover.ErrTimeout, d.cfg.Timeout), r.err)
	case r.code == 0 && r.err == nil:
	case r.code == ExitRefused:
		a.Kind = failover.ErrPrecondition
	case r.code == ExitFailed:
		a.Kind = failover.ErrFailed
	default:
		a.Kind = failover.ErrUnknownOutcome
	}
	return a
}

type runResult struct {
	started  bool
	timedOut bool
	code     int
	stdout   []byte
	stderr   []byte
	err      error
}

// run executes argv once in its own process group, killing the group at
// the timeout.
func (d *Driver) run(ctx context.Context, argv []string, stdin []byte, env []string, timeout time.Duration) runResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = d.cfg.Dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, d.cfg.Env...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return runResult{err: fmt.Errorf("start %s: %w", argv[0], err)}
	}
	err := cmd.Wait()
	r := runResult{started: true, stdout: stdout.Bytes(), stderr: stderr.Bytes(), code: cmd.ProcessState.ExitCode()}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.timedOut = true
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		r.err = err
	} else if err != nil && r.timedOut {
		r.err = err
	}
	return r
}
