package slack

// AllowUsers restricts buttons and slash commands to the Slack user IDs
// given (the on-call roster's people); with none, every member of the
// workspace who sees the message may press. Call it before serving.
func (h *Interactions) AllowUsers(ids []string) {
	if len(ids) == 0 {
		h.users = nil
		return
	}
	h.users = make(map[string]bool, len(ids))
	for _, id := range ids {
		h.users[id] = true
	}
}

// allowed reports whether user may press buttons and run commands.
func (h *Interactions) allowed(user string) bool {
	return h.users == nil || h.users[user]
}
