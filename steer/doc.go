// Package steer makes applications follow the healthy, fastest database:
// eBPF connection steering (`mciv steer`).
//
// A cgroup/connect4 and cgroup/connect6 program (bpf/steer.bpf.c),
// attached to the cgroup (v2) of an application, rewrites a TCP connect()
// to a listed service address (a virtual address and port naming a
// database service, such as payments-rw) to the backend the current route
// names; cgroup/getpeername4/6 keep showing the service address. Nothing
// else is touched.
//
// Routes live in the JetStream KV bucket MCIV_ROUTES, one key per service.
// The Controller (in `mciv up`, beside the analyzer) computes them with
// steer/routes from Patroni's topology, the actuator's switchover records
// on mciv.actions.>, measured latency and firing alerts, writes them and
// audits every change as a wire.Action; each Agent (on an application
// host) watches the bucket, checks every route against its own
// configuration (listed service, role, a backend of that service's
// clusters) and refuses the rest, and keeps its last routes when NATS is
// gone (fail static).
package steer
