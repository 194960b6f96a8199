package slack

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"
)

// MetadataEventType is the event type of the Slack message metadata that
// every group message carries, so that a notifier that lost the answer to
// its first post (killed, or the connection dropped) finds the message
// instead of posting it twice. Its payload holds the group key and the
// incident's first-seen time (Unix nanoseconds, as a string).
const MetadataEventType = "mciv_alert_group"

// historyLimit is how many of a channel's newest messages the lookup
// reads: a message posted moments ago is among them in any channel a
// person can follow.
const historyLimit = 200

var channelIDPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

// groupMetadata is the metadata of the message of the group key whose
// incident started at firstSeen.
func groupMetadata(key string, firstSeen time.Time) slackgo.SlackMetadata {
	return slackgo.SlackMetadata{EventType: MetadataEventType, EventPayload: map[string]any{
		"group_key":  key,
		"first_seen": strconv.FormatInt(firstSeen.UnixNano(), 10),
	}}
}

// rememberChannel records the ID Slack answered for a channel name.
func (n *Incidents) rememberChannel(channel, id string) {
	if channel != "" && id != "" {
		n.channelIDs.Store(strings.TrimPrefix(channel, "#"), id)
	}
}

// channelID returns the ID of channel (a name or an ID): from Slack's
// earlier answers in this process, the notification log, or else Slack's
// list of channels (conversations.list); "" when Slack has no channel of
// that name (then there is nothing to find).
func (n *Incidents) channelID(ctx context.Context, channel string) (string, error) {
	if channelIDPattern.MatchString(channel) {
		return channel, nil
	}
	if id, ok := n.channelIDs.Load(strings.TrimPrefix(channel, "#")); ok {
		return id.(string), nil
	}
	entries, err := n.log.Entries(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Channel == channel && e.ChannelID != "" {
			n.rememberChannel(channel, e.ChannelID)
			return e.ChannelID, nil
		}
	}
	// The first message ever to this channel was lost with its answer
	// (a crash): ask Slack which channel has the name.
	id, err := n.lookupChannel(ctx, strings.TrimPrefix(channel, "#"))
	if err != nil {
		return "", err
	}
	n.rememberChannel(channel, id)
	return id, nil
}

// listPageSize is how many channels one conversations.list call asks for.
const listPageSize = 200

// lookupChannel finds the ID of the channel called name (without '#')
// with conversations.list, page by page; "" when there is none.
func (n *Incidents) lookupChannel(ctx context.Context, name string) (string, error) {
	cursor := ""
	for {
		var (
			chans []slackgo.Channel
			next  string
		)
		err := n.call.do(ctx, "conversations.list", "", func(ctx context.Context) error {
			var err error
			chans, next, err = n.api.GetConversationsContext(ctx, &slackgo.GetConversationsParameters{
				Cursor: cursor, Limit: listPageSize, ExcludeArchived: true, Types: []string{"public_channel", "private_channel"},
			})
			return err
		})
		if err != nil {
			return "", fmt.Errorf("looking up channel %s: %w", name, err)
		}
		for _, c := range chans {
			if c.Name == name {
				return c.ID, nil
			}
		}
		if next == "" || next == cursor {
			return "", nil
		}
		cursor = next
	}
}

// findPosted looks for the message of group key (incident firstSeen) among
// the channel's newest messages by its metadata (conversations.history
// with include_all_metadata). It returns the channel ID and ts, or "" when
// there is no such message.
func (n *Incidents) findPosted(ctx context.Context, channel, key string, firstSeen time.Time) (chID, ts string, err error) {
	chID, err = n.channelID(ctx, channel)
	if err != nil || chID == "" {
		return "", "", err
	}
	want := groupMetadata(key, firstSeen).EventPayload
	var resp *slackgo.GetConversationHistoryResponse
	err = n.call.do(ctx, "conversations.history", "", func(ctx context.Context) error {
		var err error
		resp, err = n.api.GetConversationHistoryContext(ctx, &slackgo.GetConversationHistoryParameters{
			ChannelID: chID, Limit: historyLimit, IncludeAllMetadata: true,
		})
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("looking for the group's message: %w", err)
	}
	for _, m := range resp.Messages {
		md := m.Metadata
		if md.EventType == MetadataEventType && fmt.Sprint(md.EventPayload["group_key"]) == want["group_key"] &&
			fmt.Sprint(md.EventPayload["first_seen"]) == want["first_seen"] {
			return chID, m.Timestamp, nil
		}
	}
	return "", "", nil
}
