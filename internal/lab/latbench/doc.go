// Package latbench is the side-by-side latency benchmark of issue 18
// (`make bench-latency`): the same real TCP retransmit fault, 20 % packet
// loss switched on with nftables on the input hook of a network namespace
// the benchmark creates, measured from the outside against mciv (`mciv up`
// with its default rules, posting to a fake Slack on loopback) and against
// Prometheus + node_exporter + Alertmanager from Debian (posting to a
// webhook on loopback) in two settings, Fastest and Typical. It reports
// the fault→first-notification distribution of each, and the alerts each
// raised in a quiet period with background noise (short retransmit blips).
//
// All systems watch the same faults at the same time. The workload (a TCP
// echo stream of 100 KiB/s, from internal/lab/lossnet) runs on the
// namespace's loopback; a veth pair joins the namespace to the host, and
// node_exporter runs inside the namespace, listening on its end of the
// pair, so that it reads the namespace's own /proc/net/netstat (the
// counters of the sockets that retransmit) and Prometheus scrapes it from
// the host. mciv's collector sees every namespace; it is told to watch
// only this one (collector.netns), so that other tests on a shared machine,
// which make packet loss of their own, count for neither system.
//
// Only tests import it (it is a lab); the run itself is TestBenchLatency,
// opt-in with MCIV_BENCH_LATENCY=1 (scripts/bench-latency.sh sets it).
package latbench
