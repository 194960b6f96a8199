package steer

import "github.com/mciv/mciv/internal/auth"

// The NATS roles of steering (internal/auth holds their permissions,
// which `mciv auth init` writes into the trust root): an agent only reads
// and watches the routes bucket (DefaultBucket) and can neither write a
// route nor publish anything on mciv.> subjects; the controller writes
// the routes and audits each change on the actions stream. A deployment
// that names another bucket (steer.bucket) grants it in its own NATS
// configuration.
const (
	AgentRole      = auth.Steer
	ControllerRole = auth.SteerController
)
