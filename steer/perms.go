package steer

// Permissions are the NATS subjects a steering agent needs, for a
// read-only NATS user (nats-server `permissions:` or an nsc user):
// it may read and watch the routes bucket and nothing else; it can neither
// write a route nor publish anything on mciv.> subjects.
type Permissions struct {
	PublishAllow   []string
	SubscribeAllow []string
}

// AgentPermissions returns the permissions of a steering agent following
// bucket (DefaultBucket when empty).
func AgentPermissions(bucket string) Permissions {
	if bucket == "" {
		bucket = DefaultBucket
	}
	stream := "KV_" + bucket
	return Permissions{
		PublishAllow: []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO." + stream,
			"$JS.API.CONSUMER.CREATE." + stream,
			"$JS.API.CONSUMER.CREATE." + stream + ".>",
			"$JS.API.CONSUMER.DELETE." + stream + ".>",
			"$JS.API.CONSUMER.INFO." + stream + ".>",
			"$JS.API.DIRECT.GET." + stream + ".>",
			"$JS.FC." + stream + ".>", // flow control replies of the watch
		},
		SubscribeAllow: []string{"_INBOX.>"},
	}
}
