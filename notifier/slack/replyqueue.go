package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mciv/mciv/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
	slackgo "github.com/slack-go/slack"
)

// ReplyQueueConfig tunes a ReplyQueue. The zero value is usable.
type ReplyQueueConfig struct {
	// MaxReplies bounds the replies held (waiting for Slack) across all
	// threads; a reply beyond it is refused, counted and logged. Default
	// 10000.
	MaxReplies int
	// RetryMin and RetryMax bound the wait before a thread's reply that
	// failed is tried again: it doubles with every failure of that
	// thread, from RetryMin up to RetryMax (longer if Slack asked for it
	// with Retry-After). Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration
	// Registry gets the queue's metrics; nil: not registered.
	Registry prometheus.Registerer
}

func (c ReplyQueueConfig) withDefaults() ReplyQueueConfig {
	if c.MaxReplies <= 0 {
		c.MaxReplies = 10000
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	return c
}

// ReplyQueue posts thread replies for parts that must not wait for Slack:
// the phone escalation reports its calls under its own lock, and a Slack
// that answers slowly or not at all must not delay the next call.
// PostThreadReply looks the alert's threads up in the notification log
// (JetStream, not Slack), queues the reply and returns; Run posts the
// queued replies. Replies to one thread are posted in the order they were
// queued, each retried with backoff until Slack takes it (a thread whose
// reply fails waits; the other threads go on); a reply Slack rejects for
// good (channel_not_found, ...) is dropped, counted and logged. What the
// queue holds is bounded by MaxReplies and lives in memory: replies still
// queued when the process stops are lost (logged).
//
// It is safe for concurrent use. Uploads (UploadToThread) and HasThread
// go to Slack directly: only the voice integration uses them, in its own
// dispatcher lane.
type ReplyQueue struct {
	inc  *Incidents
	call *caller // Incidents' caller, one attempt per call
	cfg  ReplyQueueConfig
	log  *slog.Logger

	mu      sync.Mutex
	threads map[string]*threadReplies // by channel ID + "/" + ts
	held    int                       // replies across threads
	seq     uint64
	wake    chan struct{}

	depth   prometheus.Gauge
	dropped *prometheus.CounterVec
}

// threadReplies is the queue of one thread.
type threadReplies struct {
	channelID, ts string
	replies       []queuedReply
	fails         int
	notBefore     time.Time
}

type queuedReply struct {
	seq  uint64
	text string
}

var _ ThreadPoster = (*ReplyQueue)(nil)

// Values of the reason label of mciv_notifier_slack_replies_dropped_total.
const (
	dropFull     = "queue_full"
	dropRejected = "rejected"
	dropStopped  = "stopped"
)

// NewReplyQueue returns a queue that posts into the threads of inc's
// group messages. Call Run to post.
func NewReplyQueue(inc *Incidents, cfg ReplyQueueConfig) *ReplyQueue {
	cfg = cfg.withDefaults()
	call := *inc.call
	call.maxAttempts = 1 // Run retries, thread by thread
	depth := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mciv_notifier_slack_reply_queue_depth",
		Help: "Slack thread replies queued (escalation reports) and not yet posted.",
	})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_notifier_slack_replies_dropped_total",
		Help: "Slack thread replies given up on, by reason (queue_full, rejected by Slack, stopped while queued).",
	}, []string{"reason"})
	return &ReplyQueue{
		inc: inc, call: &call, cfg: cfg,
		log:     inc.logger.With("part", "reply-queue"),
		threads: make(map[string]*threadReplies),
		wake:    make(chan struct{}, 1),
		depth:   promreg.Register(cfg.Registry, depth, nil),
		dropped: promreg.Register(cfg.Registry, dropped, nil),
	}
}

// PostThreadReply queues text for the thread of every group message of
// the alert fingerprint and returns without waiting for Slack. It does
// nothing when the alert has no Slack message yet. It returns an error
// when the notification log cannot be read or the queue is full.
func (q *ReplyQueue) PostThreadReply(ctx context.Context, fingerprint, text string) error {
	es, err := q.inc.threads(ctx, fingerprint)
	if err != nil {
		return err
	}
	var errs []error
	q.mu.Lock()
	for _, e := range es {
		if q.held >= q.cfg.MaxReplies {
			q.dropped.WithLabelValues(dropFull).Inc()
			errs = append(errs, fmt.Errorf("slack: reply queue full (%d replies): reply to thread %s dropped", q.held, e.TS))
			continue
		}
		key := e.ChannelID + "/" + e.TS
		t := q.threads[key]
		if t == nil {
			t = &threadReplies{channelID: e.ChannelID, ts: e.TS}
			q.threads[key] = t
		}
		q.seq++
		t.replies = append(t.replies, queuedReply{seq: q.seq, text: text})
		q.held++
	}
	q.depth.Set(float64(q.held))
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

// UploadToThread uploads into the alert's threads at once (see ReplyQueue).
func (q *ReplyQueue) UploadToThread(ctx context.Context, fingerprint, filename string, data []byte, title string) error {
	return q.inc.UploadToThread(ctx, fingerprint, filename, data, title)
}

// HasThread is Incidents.HasThread.
func (q *ReplyQueue) HasThread(ctx context.Context, fingerprint string) (bool, error) {
	return q.inc.HasThread(ctx, fingerprint)
}

// Len returns the number of replies queued and not yet posted.
func (q *ReplyQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held
}

// Run posts the queued replies until ctx ends, then drops (and counts)
// what is still queued. It returns nil.
func (q *ReplyQueue) Run(ctx context.Context) error {
	for {
		t, r, wait := q.next(time.Now())
		if t == nil {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				q.stop()
				return nil
			case <-q.wake:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		err := q.post(ctx, t, r)
		if ctx.Err() != nil {
			q.stop()
			return nil
		}
		q.done(t, r, err)
	}
}

// next returns the thread whose head reply was queued first among the
// threads not waiting out a failure, and that reply; or nil and how long
// to wait for one.
func (q *ReplyQueue) next(now time.Time) (*threadReplies, queuedReply, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best *threadReplies
	wait := time.Hour
	for _, t := range q.threads {
		if len(t.replies) == 0 {
			continue
		}
		if d := t.notBefore.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if best == nil || t.replies[0].seq < best.replies[0].seq {
			best = t
		}
	}
	if best == nil {
		return nil, queuedReply{}, wait
	}
	return best, best.replies[0], 0
}

// post makes one attempt to post r into t.
func (q *ReplyQueue) post(ctx context.Context, t *threadReplies, r queuedReply) error {
	return q.call.do(ctx, "chat.postMessage (thread)", t.channelID, func(ctx context.Context) error {
		_, _, err := q.inc.api.PostMessageContext(ctx, t.channelID, slackgo.MsgOptionText(r.text, false), slackgo.MsgOptionTS(t.ts))
		return err
	})
}

// done records the outcome of posting r, the head of t.
func (q *ReplyQueue) done(t *threadReplies, r queuedReply, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	log := q.log.With("channel_id", t.channelID, "thread_ts", t.ts)
	var retry *retryError
	if err != nil && errors.As(err, &retry) {
		t.fails++
		delay := q.cfg.RetryMin
		for i := 1; i < t.fails && delay < q.cfg.RetryMax; i++ {
			delay *= 2
		}
		delay = max(min(delay, q.cfg.RetryMax), retry.RetryAfter())
		t.notBefore = time.Now().Add(delay)
		log.Warn("slack thread reply failed; retrying", "attempts", t.fails, "retry_in", delay, "queued", len(t.replies), "err", err)
		return
	}
	if err != nil {
		q.dropped.WithLabelValues(dropRejected).Inc()
		log.Error("slack rejected a thread reply; dropped", "err", err)
	} else if t.fails > 0 {
		log.Info("slack takes thread replies again", "attempts", t.fails+1)
	}
	t.replies = t.replies[1:]
	t.fails, t.notBefore = 0, time.Time{}
	q.held--
	if len(t.replies) == 0 {
		delete(q.threads, t.channelID+"/"+t.ts)
	}
	q.depth.Set(float64(q.held))
}

// stop drops what is still queued when Run ends.
func (q *ReplyQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held > 0 {
		q.dropped.WithLabelValues(dropStopped).Add(float64(q.held))
		q.log.Warn("stopping with slack thread replies not posted", "replies", q.held, "threads", len(q.threads))
	}
	clear(q.threads)
	q.held = 0
	q.depth.Set(0)
}
