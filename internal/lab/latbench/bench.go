package latbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"time"
)

// System is one system under test as Run sees it: where its
// notifications arrive and how long to wait for them.
type System struct {
	// Name and Setting label its row in the table.
	Name, Setting string
	// Feed receives its notifications.
	Feed *Feed
	// FireTimeout bounds the wait for its first notification after a
	// fault starts; ResolveTimeout the wait for its resolve after the
	// fault ends.
	FireTimeout, ResolveTimeout time.Duration
	// Faults is how many faults it takes part in: the first Faults of the
	// run (it stays running, but is not waited for, after).
	Faults int
	// Stage marks a row that times a step inside a system (mciv's first
	// retransmit event, its alert on the bus) rather than a notification:
	// no resolve is waited for and the quiet period is not counted.
	Stage bool
	// Explain, if set, is a feed whose firing notes in the quiet period
	// are reported beside the system's quiet alerts, to say what paged
	// (for mciv: its alerts on the bus, with their rule and labels).
	Explain *Feed
}

// Loss switches the fault on and off (NetLab does it with nftables).
type Loss interface {
	SetLoss(ctx context.Context, percent int) error
}

// Options configures Run.
type Options struct {
	// Lab switches the packet loss.
	Lab Loss
	// Systems are measured side by side, on the same faults.
	Systems []*System
	// LossPercent is the fault's packet loss (20).
	LossPercent int
	// Gap is the quiet time after every system resolved a fault, before
	// the next one starts.
	Gap time.Duration
	// GapJitter adds a random wait, uniform in [0, GapJitter), to each
	// gap. The gap starts at the last resolve, which arrives on some
	// system's scrape or evaluation cycle: without jitter every fault
	// would start at the same phase of that cycle, and a system polled on
	// it would measure one lucky (or unlucky) latency over and over. Set
	// it to the longest such cycle.
	GapJitter time.Duration
	// Quiet is the length of the quiet period with noise; 0 skips it.
	Quiet time.Duration
	// BlipMin and BlipMax bound the time between two noise blips in the
	// quiet period; BlipLength is how long a blip's loss lasts.
	BlipMin, BlipMax, BlipLength time.Duration
	// QuietTail is how long after the quiet period its alerts still count
	// (a blip near its end may page late).
	QuietTail time.Duration
	// Seed makes the blips' timing repeatable.
	Seed uint64
	// Lock, if set, is held while packets are being dropped, and returns
	// the function that releases it (KernelLock).
	Lock func(context.Context) (func(), error)
	// Retransmits, if set, reads the fault namespace's retransmit
	// counter, so that the log says how many each fault and blip caused.
	Retransmits func(context.Context) (int64, error)
	// Logf reports progress.
	Logf func(format string, args ...any)
	// OnLoss, if set, is told of every loss once it is off: what it was
	// ("fault 1", "blip 3") and when it was switched on and off.
	OnLoss func(what string, on, off time.Time)
}

func (o Options) onLoss(what string, on, off time.Time) {
	if o.OnLoss != nil {
		o.OnLoss(what, on, off)
	}
}

// retransmits returns the counter, or -1 without one.
func (o Options) retransmits(ctx context.Context) int64 {
	if o.Retransmits == nil {
		return -1
	}
	n, err := o.Retransmits(ctx)
	if err != nil {
		o.Logf("retransmit counter: %v", err)
		return -1
	}
	return n
}

// Run runs the faults, then the quiet period, and returns one Result per
// system, in the order of opts.Systems. The loss is off when it returns.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if opts.LossPercent <= 0 {
		opts.LossPercent = 20
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Lock == nil {
		opts.Lock = func(context.Context) (func(), error) { return func() {}, nil }
	}
	results := make([]Result, len(opts.Systems))
	rounds := 0
	for i, s := range opts.Systems {
		results[i] = Result{System: s.Name, Setting: s.Setting, QuietAlerts: -1, Stage: s.Stage}
		rounds = max(rounds, s.Faults)
	}
	defer func() { _ = opts.Lab.SetLoss(context.WithoutCancel(ctx), 0) }()

	jitter := rand.New(rand.NewPCG(opts.Seed, 0x67617073))
	for round := 0; round < rounds; round++ {
		var active []int
		for i, s := range opts.Systems {
			if s.Faults > round {
				active = append(active, i)
			}
		}
		if err := fault(ctx, opts, round, active, results); err != nil {
			return results, err
		}
		gap := opts.Gap
		if opts.GapJitter > 0 {
			gap += time.Duration(jitter.Int64N(int64(opts.GapJitter)))
		}
		if err := sleep(ctx, gap); err != nil {
			return results, err
		}
	}
	if opts.Quiet > 0 {
		if err := quiet(ctx, opts, results); err != nil {
			return results, err
		}
	}
	return results, nil
}

// fault switches the loss on, waits for each active system's first
// notification, switches it off and waits for each one's resolve.
func fault(ctx context.Context, opts Options, round int, active []int, results []Result) error {
	unlock, err := opts.Lock(ctx)
	if err != nil {
		return err
	}
	before := opts.retransmits(ctx)
	start := time.Now()
	if err := opts.Lab.SetLoss(ctx, opts.LossPercent); err != nil {
		unlock()
		return err
	}
	opts.Logf("fault %d: %d%% loss on at %s (nft took %s)", round+1, opts.LossPercent, start.UTC().Format("15:04:05.000"), time.Since(start).Round(time.Millisecond))
	fired := make([]bool, len(opts.Systems))
	var mu sync.Mutex
	each(active, func(i int) {
		s := opts.Systems[i]
		n, err := s.Feed.Wait(ctx, true, start, s.FireTimeout)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			results[i].Missed++
			opts.Logf("fault %d: %s: %v", round+1, s.Name, err)
			return
		}
		fired[i] = true
		d := n.At.Sub(start)
		results[i].Latencies = append(results[i].Latencies, d)
		opts.Logf("fault %d: %s notified after %.2f s (%s)", round+1, s.Name, d.Seconds(), n.What)
	})
	stop := time.Now()
	err = opts.Lab.SetLoss(context.WithoutCancel(ctx), 0)
	unlock()
	if err != nil {
		return err
	}
	opts.onLoss(fmt.Sprintf("fault %d", round+1), start, stop)
	if after := opts.retransmits(ctx); before >= 0 && after >= 0 {
		opts.Logf("fault %d: loss off after %.1f s, %d retransmits in the namespace; waiting for the resolves", round+1, stop.Sub(start).Seconds(), after-before)
	} else {
		opts.Logf("fault %d: loss off after %.1f s; waiting for the resolves", round+1, stop.Sub(start).Seconds())
	}
	each(active, func(i int) {
		s := opts.Systems[i]
		if !fired[i] || s.Stage {
			return
		}
		if n, err := s.Feed.Wait(ctx, false, stop, s.ResolveTimeout); err != nil {
			opts.Logf("fault %d: %s: %v", round+1, s.Name, err)
		} else {
			opts.Logf("fault %d: %s resolved %.1f s after the loss ended", round+1, s.Name, n.At.Sub(stop).Seconds())
		}
	})
	return ctx.Err()
}

// quiet runs the quiet period: the workload only, with a short loss blip
// every BlipMin to BlipMax, and counts each system's firing notifications.
func quiet(ctx context.Context, opts Options, results []Result) error {
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6d636976))
	start := time.Now()
	end := start.Add(opts.Quiet)
	opts.Logf("quiet period: %s with a %s blip of %d%% loss every %s to %s", opts.Quiet, opts.BlipLength, opts.LossPercent, opts.BlipMin, opts.BlipMax)
	blips := 0
	for {
		next := opts.BlipMin
		if opts.BlipMax > opts.BlipMin {
			next += time.Duration(rng.Int64N(int64(opts.BlipMax - opts.BlipMin)))
		}
		if time.Now().Add(next + opts.BlipLength).After(end) {
			break
		}
		if err := sleep(ctx, next); err != nil {
			return err
		}
		blips++
		if err := blip(ctx, opts, blips); err != nil {
			return err
		}
	}
	if err := sleep(ctx, time.Until(end)+opts.QuietTail); err != nil {
		return err
	}
	to := end.Add(opts.QuietTail)
	for i, s := range opts.Systems {
		if s.Stage {
			continue
		}
		results[i].QuietAlerts = s.Feed.Count(true, start, to)
		results[i].QuietFrom = start
		results[i].QuietNotes = s.Feed.Between(true, start, to)
		if s.Explain != nil {
			results[i].QuietExplain = s.Explain.Between(true, start, to)
		}
		for _, n := range results[i].QuietNotes {
			opts.Logf("quiet period: %s paged at +%.1f s: %s", s.Name, n.At.Sub(start).Seconds(), n.What)
		}
	}
	opts.Logf("quiet period over: %d blips", blips)
	return nil
}

func blip(ctx context.Context, opts Options, n int) error {
	unlock, err := opts.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	before := opts.retransmits(ctx)
	at := time.Now()
	if err := opts.Lab.SetLoss(ctx, opts.LossPercent); err != nil {
		return err
	}
	serr := sleep(ctx, opts.BlipLength)
	if err := errors.Join(serr, opts.Lab.SetLoss(context.WithoutCancel(ctx), 0)); err != nil {
		return err
	}
	opts.onLoss(fmt.Sprintf("blip %d", n), at, time.Now())
	if before >= 0 {
		// The senders retransmit what was lost within about an RTO.
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		if after := opts.retransmits(ctx); after >= 0 {
			opts.Logf("blip at %s: %s of %d%% loss, %d retransmits in the namespace", at.UTC().Format("15:04:05.000"), opts.BlipLength, opts.LossPercent, after-before)
		}
	}
	return nil
}

// each runs fn for every index at once and waits for all.
func each(idx []int, fn func(int)) {
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kernelLockPath is the lock the repository's tests take around
// host-wide kernel effects such as packet loss (internal/lab/testenv's
// ExclusiveKernel): the benchmark holds it while it drops packets, so that
// tests counting retransmits elsewhere on the host do not count its own.
const kernelLockPath = "/run/mciv-test-kernel.lock"

// KernelLock takes the host-wide kernel test lock, waiting while a test
// holds it, and returns its release.
func KernelLock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(kernelLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("latbench: kernel lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("latbench: kernel lock %s: %w", kernelLockPath, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
