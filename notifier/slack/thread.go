package slack

import (
	"context"
	"errors"
	"fmt"

	"github.com/mciv/mciv/notifier/nflog"
)

// ThreadPoster adds to the Slack thread of an alert: the thread of the
// message of every group the alert (by fingerprint) was notified in. Voice
// and phone escalation use it to attach the spoken clip and to report
// calls. Both return nil, doing nothing, when the alert has no Slack
// message (yet); both honour the per-channel rate limit and retry 429 and
// 5xx within ctx.
type ThreadPoster interface {
	// PostThreadReply posts text (Slack mrkdwn) as a reply in the thread.
	PostThreadReply(ctx context.Context, fingerprint, text string) error
	// UploadToThread uploads a file (an audio clip, an image) into the
	// thread with Slack's external upload flow.
	UploadToThread(ctx context.Context, fingerprint, filename string, data []byte, title string) error
}

// threads returns the (channel id, ts) of every posted group of fp.
func (n *Incidents) threads(ctx context.Context, fp string) ([]*nflog.Entry, error) {
	keys, err := n.log.Groups(ctx, fp)
	if err != nil {
		return nil, err
	}
	var out []*nflog.Entry
	for _, k := range keys {
		e, _, err := n.log.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if e != nil && e.TS != "" && e.ChannelID != "" {
			if _, ok := e.Alerts[fp]; ok {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// PostThreadReply implements ThreadPoster.
func (n *Incidents) PostThreadReply(ctx context.Context, fingerprint, text string) error {
	es, err := n.threads(ctx, fingerprint)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range es {
		if err := n.reply(ctx, e.ChannelID, e.TS, text); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UploadToThread implements ThreadPoster.
func (n *Incidents) UploadToThread(ctx context.Context, fingerprint, filename string, data []byte, title string) error {
	if len(data) == 0 {
		return fmt.Errorf("slack: upload %s: empty file", filename)
	}
	es, err := n.threads(ctx, fingerprint)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range es {
		if err := n.upload(ctx, e.ChannelID, e.TS, filename, data, title); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// HasThread reports whether the alert fingerprint has a posted Slack
// message whose thread can take replies and uploads. Voice uses it to wait
// for the message instead of uploading its clip into nothing.
func (n *Incidents) HasThread(ctx context.Context, fingerprint string) (bool, error) {
	es, err := n.threads(ctx, fingerprint)
	if err != nil {
		return false, err
	}
	return len(es) > 0, nil
}
