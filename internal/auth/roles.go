// Package auth is mciv's trust on the bus: the roles every client has, the
// NATS permissions each role gets (least privilege, enforced by the
// server), and the trust root that issues per-host, per-role credentials
// (nkeys and JWTs: an operator, a system account and the MCIV account with
// one scoped signing key per role, whose permission template says once that
// a collector publishes only its own subjects).
package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/jwt/v2"
)

// Role is what a client of the bus may do.
type Role string

// The roles. Admin provisions streams and buckets and is not a role any
// running part uses.
const (
	Collector Role = "collector" // publishes its own host's samples and events
	Analyzer  Role = "analyzer"  // reads samples, publishes alerts, keeps alert state
	Notifier  Role = "notifier"  // reads alerts, acks, actions; writes acks, nflog, silences, escalations
	Actuator  Role = "actuator"  // reads samples, alerts, acks; writes actions, its lease and state
	Operator  Role = "operator"  // the CLI: silences, failover pause, tail
	// Steer is the steering agent on an application host: it reads the
	// routes and nothing else.
	Steer Role = "steer"
	// SteerController computes the routes and writes them.
	SteerController Role = "steer-controller"
	Admin           Role = "admin" // `mciv auth provision`: creates streams and buckets
)

// Roles lists every role in a stable order.
var Roles = []Role{Collector, Analyzer, Notifier, Actuator, Operator, Steer, SteerController, Admin}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("unknown role %q (one of %s)", s, strings.Join(names, ", "))
}

// Stream, bucket and durable consumer names the permissions speak of. They
// are the names the parts use (a test in app checks they agree).
const (
	AlertsStream  = "MCIV_ALERTS"
	ActionsStream = "MCIV_ACTIONS"
	AcksStream    = "MCIV_ACKS"

	AlertStateBucket    = "MCIV_ALERT_STATE"
	NflogBucket         = "MCIV_NFLOG"
	SilencesBucket      = "MCIV_SILENCES"
	EscalationsBucket   = "MCIV_ESCALATIONS"
	FailoverStateBucket = "mciv_failover_state"
	FailoverLeaseBucket = "mciv_failover_lease"

	NotifierDurable     = "mciv-notifier"
	SlackAcksDurable    = "mciv-notifier-slack-acks"
	SlackActionsDurable = "mciv-notifier-slack-actions"
	EscalationDurable   = "mciv-escalation"
	ActuatorDurable     = "mciv-actuator"

	// The fleet (analyzer.partitioned): the input stream the collectors
	// publish into, the partition checkpoints and members' heartbeats,
	// and the durable consumer of each partition
	// (PartitionDurablePrefix<n>, pulled in a pinned priority group).
	InputStream      = "MCIV_IN"
	PartitionsBucket = "MCIV_PARTITIONS"
	// DetectorsBucket is the object store of the partitions' detector
	// snapshots (analyzer.DetectorsBucket).
	DetectorsBucket        = "MCIV_DETECTORS"
	PartitionDurablePrefix = "mciv-analyzer-p"

	// RoutesBucket holds the steering routes (steer.DefaultBucket); a
	// deployment that names another bucket grants it itself.
	RoutesBucket = "MCIV_ROUTES"
	// SteerLeaseBucket holds the steering controllers' lease
	// (steer.DefaultLeaseBucket): one controller writes routes at a time.
	SteerLeaseBucket = "MCIV_STEER_LEASE"
)

// NotifierIntegrations are the integrations that each have their own
// durable consumer, NotifierDurable-<integration>, on the alerts stream.
func NotifierIntegrations() []string { return []string{"console", "slack", "voice", "escalation"} }

// Tag keys on user JWTs: the role and the database cluster. The server
// lower-cases tags, so cluster names used with credentials are lower case.
const (
	TagRole    = "role"
	TagCluster = "cluster"
)

// InboxPrefix is the reply-subject prefix of a client: each client may
// subscribe to its own inbox only, so that nobody reads another's replies
// (KV values, JetStream API answers).
func InboxPrefix(role Role, cluster, name string) string {
	return "_INBOX." + string(role) + "." + cluster + "." + name
}

// inboxTemplate is InboxPrefix as a permission template.
func inboxTemplate(role Role) string {
	return InboxPrefix(role, "{{tag("+TagCluster+")}}", "{{name()}}") + ".>"
}

// Permissions returns the permission template of role: subjects may hold
// {{name()}} (the credential's name: the host for a collector) and
// {{tag(cluster)}}, which the server expands per user.
func Permissions(role Role) jwt.Permissions {
	var p perms
	p.sub(inboxTemplate(role))
	switch role {
	case Collector:
		// Its own host's subjects only, on core NATS or into the fleet's
		// input stream (a JetStream publish: the stream's acknowledgement
		// comes back on the collector's inbox). It may look the input
		// stream up, not read it.
		p.pub(wire.SamplesPrefix+".{{tag("+TagCluster+")}}.{{name()}}",
			wire.EventsPrefix+".{{tag("+TagCluster+")}}.{{name()}}")
		p.streamInfo(InputStream)
	case Analyzer:
		p.sub(wire.SamplesWildcard)
		p.sub(wire.AcksWildcard) // Resolve pressed in Slack ends an alert
		p.pub(wire.AlertsWildcard)
		p.streamInfo(AlertsStream)
		p.kvOwner(AlertStateBucket)
		// Resolves are audited on MCIV_ACTIONS; no failover decision.
		p.pub(wire.ResolveActionSubject("*"))
		// Fleet mode: every analyzer ensures the input stream (create or
		// update, never delete or purge), pulls the partitions' durable
		// consumers in their priority group, acknowledges, unpins a
		// partition it hands over, replays a partition through ordered
		// consumers, and keeps checkpoints and heartbeats in
		// PartitionsBucket. Consumer names are whole tokens in subjects,
		// so the partition durables are granted as any consumer of the
		// input stream, which the analyzer reads in full anyway.
		p.streamOwner(InputStream)
		p.orderedConsumer(InputStream)
		p.pub("$JS.API.CONSUMER.DURABLE.CREATE."+InputStream+".*",
			"$JS.API.CONSUMER.UNPIN."+InputStream+".*",
			"$JS.ACK."+InputStream+".>")
		p.kvOwner(PartitionsBucket)
		p.objOwner(DetectorsBucket)
	case Notifier:
		p.sub(wire.SamplesWildcard) // the chart recorder
		p.pub(wire.AcksWildcard)    // Slack buttons and phone keypresses
		// Acks it refused (unsigned, forged) are audited; no failover
		// decision.
		p.pub(wire.AckActionSubject("*"))
		p.streamInfo(ActionsStream)
		// One durable per integration (notifier.Dispatcher), the old
		// shared one read for where to start.
		p.consumer(AlertsStream, NotifierDurable)
		for _, integration := range NotifierIntegrations() {
			p.consumer(AlertsStream, NotifierDurable+"-"+integration)
		}
		// ... and retire the old shared one once the lanes took over.
		p.pub("$JS.API.CONSUMER.DELETE." + AlertsStream + "." + NotifierDurable)
		// The console's feed of acknowledgements, silences and failover
		// decisions reads the acks and actions streams as they pass.
		p.orderedConsumer(AcksStream)
		p.orderedConsumer(ActionsStream)
		p.consumer(AcksStream, SlackAcksDurable)
		p.consumer(AcksStream, EscalationDurable)
		p.consumer(ActionsStream, SlackActionsDurable)
		p.kvOwner(NflogBucket)
		p.kvOwner(SilencesBucket)
		p.kvOwner(EscalationsBucket)
	case Actuator:
		p.sub(wire.SamplesWildcard)
		p.pub(wire.ActionsWildcard)
		p.streamInfo(ActionsStream)
		p.consumer(AlertsStream, ActuatorDurable)
		p.orderedConsumer(AcksStream) // approvals, read through JetStream
		p.kvOwner(FailoverStateBucket)
		p.kvOwner(FailoverLeaseBucket)
	case Operator:
		// tail: what passes on the bus, but not the actions stream, whose
		// pending approvals carry the nonce of the Approve button.
		p.sub(wire.SamplesWildcard, wire.EventsWildcard, wire.AlertsWildcard, wire.AcksWildcard)
		p.pub(wire.AcksWildcard)
		p.kvOwner(SilencesBucket)
		p.kvOwner(FailoverStateBucket)
	case Steer:
		p.kvReader(RoutesBucket)
	case SteerController:
		// It follows switchovers, alerts and samples, writes the routes
		// and audits each change on the actions stream.
		p.sub(wire.ActionsWildcard, wire.AlertsWildcard, wire.SamplesWildcard)
		p.pub(wire.ActionsWildcard)
		p.streamInfo(ActionsStream)
		p.kvOwner(RoutesBucket)
		p.kvOwner(SteerLeaseBucket)
	case Admin:
		p.pub(">")
		p.sub(">")
	}
	return jwt.Permissions{
		Pub: jwt.Permission{Allow: p.pubs},
		Sub: jwt.Permission{Allow: p.subs},
	}
}

// perms collects allowed subjects.
type perms struct{ pubs, subs jwt.StringList }

func (p *perms) pub(s ...string) { p.pubs.Add(s...) }
func (p *perms) sub(s ...string) { p.subs.Add(s...) }

// streamInfo lets the client look a stream up (a JetStream publish does not
// need it, but clients check that streams exist).
func (p *perms) streamInfo(stream string) {
	p.pub("$JS.API.INFO", "$JS.API.STREAM.INFO."+stream) // account info: read-only
}

// consumer lets the client create, look up and pull from one durable
// consumer of stream, and acknowledge its messages; not delete it.
func (p *perms) consumer(stream, durable string) {
	p.streamInfo(stream)
	p.pub("$JS.API.CONSUMER.CREATE."+stream+"."+durable,
		"$JS.API.CONSUMER.CREATE."+stream+"."+durable+".>",
		"$JS.API.CONSUMER.DURABLE.CREATE."+stream+"."+durable,
		"$JS.API.CONSUMER.INFO."+stream+"."+durable,
		"$JS.API.CONSUMER.MSG.NEXT."+stream+"."+durable,
		"$JS.ACK."+stream+"."+durable+".>",
		"$JS.FC."+stream+".>")
}

// orderedConsumer lets the client read stream through ephemeral consumers
// of any name (an ordered consumer), filtered to a subject.
func (p *perms) orderedConsumer(stream string) {
	p.streamInfo(stream)
	p.pub("$JS.API.CONSUMER.CREATE."+stream+".*.>",
		"$JS.API.CONSUMER.INFO."+stream+".*",
		"$JS.API.CONSUMER.DELETE."+stream+".*",
		"$JS.API.CONSUMER.MSG.NEXT."+stream+".*",
		"$JS.FC."+stream+".>")
}

// streamOwner lets the client create the stream and update its
// configuration; not delete or purge it.
func (p *perms) streamOwner(stream string) {
	p.streamInfo(stream)
	p.pub("$JS.API.STREAM.CREATE."+stream, "$JS.API.STREAM.UPDATE."+stream)
}

// kvReader lets the client read, watch and list the bucket's keys; not
// write them, nor create, change or delete the bucket.
func (p *perms) kvReader(bucket string) {
	s := "KV_" + bucket
	p.pub("$JS.API.DIRECT.GET."+s,
		"$JS.API.DIRECT.GET."+s+".>",
		"$JS.API.STREAM.MSG.GET."+s)
	p.orderedConsumer(s)
	// Older clients watch through an ephemeral consumer without a name.
	p.pub("$JS.API.CONSUMER.CREATE." + s)
}

// kvOwner lets the client create (or update the configuration of) the
// bucket, read, write, watch and list its keys; not delete or purge it.
func (p *perms) kvOwner(bucket string) {
	s := "KV_" + bucket
	p.pub("$JS.API.STREAM.INFO."+s,
		"$JS.API.STREAM.CREATE."+s,
		"$JS.API.STREAM.UPDATE."+s,
		"$KV."+bucket+".>",
		"$JS.API.DIRECT.GET."+s,
		"$JS.API.DIRECT.GET."+s+".>",
		"$JS.API.STREAM.MSG.GET."+s)
	p.orderedConsumer(s) // watch, keys, history
}

// objOwner lets the client create (or update the configuration of) the
// object store, put and get its objects; replacing an object purges its
// old chunks, so the client may purge the store's stream, not delete it.
func (p *perms) objOwner(bucket string) {
	s := "OBJ_" + bucket
	p.pub("$JS.API.STREAM.INFO."+s,
		"$JS.API.STREAM.CREATE."+s,
		"$JS.API.STREAM.UPDATE."+s,
		"$JS.API.STREAM.PURGE."+s,
		"$O."+bucket+".>",
		"$JS.API.DIRECT.GET."+s,
		"$JS.API.DIRECT.GET."+s+".>",
		"$JS.API.STREAM.MSG.GET."+s,
		"$JS.API.CONSUMER.CREATE."+s)
	p.orderedConsumer(s) // object reads
}
