package failover

import "github.com/mciv/mciv/internal/tlsconf"

// TLSConfig holds the client TLS options of the HTTP drivers (Patroni's
// REST API, webhooks): mciv's one TLS configuration type, the one NATS
// clients and the embedded server read too (package tlsconf). Its
// Client method builds the *tls.Config.
type TLSConfig = tlsconf.Config
