// Package patronilab runs a real Patroni cluster on this machine for tests:
// one etcd and N (default 3) Patroni nodes, each with its own PostgreSQL
// data directory, postgres port and REST API port on 127.0.0.1, bootstrapped
// by Patroni (initdb on the first, pg_basebackup on the others) with
// streaming replication and fast timings.
//
// It needs root (PostgreSQL runs as the "postgres" OS user) and the Debian
// packages patroni, python3-etcd, etcd-server and postgresql-15. Every
// process runs in its own process group; Stop kills them all and removes
// the directory. Each process logs to <Dir>/logs/<name>.log, dumped by
// DumpLogs and by Start when it fails.
//
// With Options.NetNS each member runs in a network namespace of its own,
// joined to the host by a veth pair on a bridge, so that faults can be
// injected into one member's network (Degrade, Heal); see netns.go.
package patronilab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configures Start. The zero value is a 3-node cluster.
type Options struct {
	// Members is the number of Patroni nodes (default 3), named pg0, pg1, ...
	Members int
	// Scope is the Patroni cluster name (default "mciv-lab").
	Scope string
	// Dir is where the cluster's temporary directory is made (default
	// os.TempDir()). It must be traversable by User.
	Dir string
	// BinDir holds the PostgreSQL binaries (default /usr/lib/postgresql/15/bin).
	BinDir string
	// Patroni and Etcd are the commands to run (default "patroni", "etcd"
	// looked up on PATH).
	Patroni string
	Etcd    string
	// User runs Patroni and PostgreSQL (default "postgres"); PostgreSQL
	// refuses to run as root.
	User string
	// TTL, LoopWait and RetryTimeout are Patroni's DCS timings in seconds
	// (defaults 10, 1, 4; Patroni wants loop_wait + 2*retry_timeout <= ttl).
	TTL, LoopWait, RetryTimeout int
	// Tags are Patroni tags per member name (e.g. {"pg2": {"nofailover": true}}).
	Tags map[string]map[string]any
	// Logger receives progress lines; nil discards.
	Logger *slog.Logger
	// FailureLog receives the process logs when Start fails (default os.Stderr).
	FailureLog io.Writer
	// KeepDir leaves the directory in place after Stop, for post-mortems.
	KeepDir bool
	// NetNS runs each member (Patroni and its PostgreSQL) in a network
	// namespace of its own (named mpl<6 hex>-pg<i>), connected by a veth
	// pair to a bridge in the host namespace, on a free /24 of 10.0.0.0/8:
	// the bridge is .1 (etcd listens there), member i is .(10+i). It needs
	// the ip, nft, nsenter and setpriv commands. Start first removes the
	// namespaces and links of earlier labs whose process is gone.
	NetNS bool
}

func (o *Options) setDefaults() {
	if o.Members <= 0 {
		o.Members = 3
	}
	if o.Scope == "" {
		o.Scope = "mciv-lab"
	}
	if o.BinDir == "" {
		o.BinDir = "/usr/lib/postgresql/15/bin"
	}
	if o.Patroni == "" {
		o.Patroni = "patroni"
	}
	if o.Etcd == "" {
		o.Etcd = "etcd"
	}
	if o.User == "" {
		o.User = "postgres"
	}
	if o.TTL <= 0 {
		o.TTL = 10
	}
	if o.LoopWait <= 0 {
		o.LoopWait = 1
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FailureLog == nil {
		o.FailureLog = os.Stderr
	}
}

// Member is one Patroni node of the lab.
type Member struct {
	Name    string
	PGPort  int
	APIPort int
	Dir     string // the node's directory (config, socket, pgpass)
	DataDir string
	// Addr is the member's IP address: "127.0.0.1" in loopback mode, its
	// address on the lab's bridge in NetNS mode.
	Addr string
	// NetNS is the path of the member's network namespace
	// (/var/run/netns/NAME), "" in loopback mode.
	NetNS string
}

// addr is Addr, 127.0.0.1 if unset.
func (m Member) addr() string {
	if m.Addr == "" {
		return "127.0.0.1"
	}
	return m.Addr
}

// hostPort is the member's address with port.
func (m Member) hostPort(port int) string { return net.JoinHostPort(m.addr(), strconv.Itoa(port)) }

// APIURL is the base URL of the member's REST API.
func (m Member) APIURL() string { return "http://" + m.hostPort(m.APIPort) }

// Cluster is a running lab. Its methods are safe for concurrent use.
type Cluster struct {
	opts     Options
	dir      string
	log      *slog.Logger
	uid, gid uint32
	etcdURL  string
	etcdPeer string
	apiUser  string
	apiPass  string
	superPW  string
	members  []Member
	http     *http.Client
	net      *labNet // nil in loopback mode

	mu    sync.Mutex
	procs map[string]*proc // "etcd" and member names
	done  bool
}

// proc is one started process and its log.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done closes
}

// Start runs etcd and the Patroni nodes and returns once one leader and
// Members-1 streaming replicas exist, or ctx ends. On failure it dumps the
// logs to opts.FailureLog and cleans up.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts.setDefaults()
	c, err := prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		fmt.Fprintf(opts.FailureLog, "patronilab: start failed: %v\n", err)
		c.DumpLogs(opts.FailureLog)
		if serr := c.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return c, nil
}

func prepare(ctx context.Context, opts Options) (*Cluster, error) {
	for _, bin := range []*string{&opts.Patroni, &opts.Etcd} {
		p, err := exec.LookPath(*bin)
		if err != nil {
			return nil, fmt.Errorf("patronilab: %w (apt-get install patroni python3-etcd etcd-server postgresql-15)", err)
		}
		*bin = p
	}
	for _, b := range []string{"postgres", "initdb", "pg_basebackup", "psql"} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("patronilab: PostgreSQL binaries: %w", err)
		}
	}
	u, err := user.Lookup(opts.User)
	if err != nil {
		return nil, fmt.Errorf("patronilab: OS user for PostgreSQL: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("patronilab: user %s: %w", opts.User, err)
	}
	ports, err := freePorts(2 + 2*opts.Members)
	if err != nil {
		return nil, err
	}
	var ln *labNet
	etcdHost := "127.0.0.1"
	if opts.NetNS {
		ln, err = newLabNet(ctx, opts.Members, opts.Logger)
		if err != nil {
			return nil, err
		}
		etcdHost = ln.gateway().String()
	}
	dir, err := os.MkdirTemp(opts.Dir, "patronilab-")
	if err != nil {
		if ln != nil {
			ln.release()
		}
		return nil, fmt.Errorf("patronilab: %w", err)
	}
	c := &Cluster{
		opts: opts, dir: dir, log: opts.Logger.With("lab", filepath.Base(dir)),
		uid: uint32(uid), gid: uint32(gid),
		etcdURL:  "http://" + net.JoinHostPort(etcdHost, strconv.Itoa(ports[0])),
		etcdPeer: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		apiUser:  "patroni", apiPass: secret(), superPW: secret(),
		http:  &http.Client{Timeout: 3 * time.Second},
		procs: map[string]*proc{},
		net:   ln,
	}
	if ln != nil {
		ln.log = c.log
	}
	if err := c.layout(ports); err != nil {
		_ = os.RemoveAll(dir)
		if ln != nil {
			ln.release()
		}
		return nil, err
	}
	return c, nil
}

// layout makes the directories and the Patroni configs.
func (c *Cluster) layout(ports []int) error {
	// MkdirTemp makes 0700; the postgres user must traverse it.
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return fmt.Errorf("patronilab: %w", err)
	}
	for _, d := range []string{"logs", "etcd"} {
		if err := os.Mkdir(filepath.Join(c.dir, d), 0o755); err != nil {
			return fmt.Errorf("patronilab: %w", err)
		}
	}
	for i := range c.opts.Members {
		m := Member{Name: fmt.Sprintf("pg%d", i), PGPort: ports[2+2*i], APIPort: ports[3+2*i]}
		m.Dir = filepath.Join(c.dir, m.Name)
		m.DataDir = filepath.Join(m.Dir, "data")
		if c.net != nil {
			m.Addr, m.NetNS = c.net.memberIP(i).String(), c.net.nsPath(i)
		} else {
			m.Addr = "127.0.0.1"
		}
		if err := os.Mkdir(m.Dir, 0o700); err != nil {
			return fmt.Errorf("patronilab: %w", err)
		}
		cfg, err := json.MarshalIndent(c.patroniConfig(m, ports[0]), "", "  ")
		if err != nil {
			return fmt.Errorf("patronilab: encode config: %w", err)
		}
		// JSON is YAML: Patroni reads it as is.
		file := filepath.Join(m.Dir, "patroni.yml")
		if err := os.WriteFile(file, cfg, 0o600); err != nil {
			return fmt.Errorf("patronilab: %w", err)
		}
		for _, p := range []string{m.Dir, file} {
			if err := os.Chown(p, int(c.uid), int(c.gid)); err != nil {
				return fmt.Errorf("patronilab: %w", err)
			}
		}
		c.members = append(c.members, m)
	}
	return nil
}

// patroniConfig is member m's Patroni configuration, with etcd's client
// port etcdPort (on the bridge's address in NetNS mode, else 127.0.0.1).
func (c *Cluster) patroniConfig(m Member, etcdPort int) map[string]any {
	o := c.opts
	tags := map[string]any{}
	for k, v := range o.Tags[m.Name] {
		tags[k] = v
	}
	etcdHost := "127.0.0.1"
	if c.net != nil {
		etcdHost = c.net.gateway().String()
	}
	pgListen := m.hostPort(m.PGPort)
	pgParams := map[string]any{
		"unix_socket_directories": m.Dir,
		"shared_buffers":          "16MB",
	}
	hba := []string{
		"local all all trust",
		"host replication replicator 127.0.0.1/32 md5",
		"host all all 127.0.0.1/32 md5",
	}
	if c.net != nil {
		// Patroni connects to its own PostgreSQL over the namespace's
		// loopback (it prefers localhost when listed); everyone else over
		// the member's address.
		pgListen = "127.0.0.1," + pgListen
		// Replicas report to the primary every second.
		pgParams["wal_receiver_status_interval"] = "1s"
		hba = append(hba,
			"host replication replicator "+c.net.subnet.String()+" md5",
			"host all all "+c.net.subnet.String()+" md5",
		)
	}
	return map[string]any{
		"scope":     o.Scope,
		"namespace": "/mciv/",
		"name":      m.Name,
		"log":       map[string]any{"level": "INFO"},
		"restapi": map[string]any{
			"listen":          m.hostPort(m.APIPort),
			"connect_address": m.hostPort(m.APIPort),
			"authentication":  map[string]any{"username": c.apiUser, "password": c.apiPass},
		},
		"etcd3": map[string]any{"hosts": []string{net.JoinHostPort(etcdHost, strconv.Itoa(etcdPort))}},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl": o.TTL, "loop_wait": o.LoopWait, "retry_timeout": o.RetryTimeout,
				"maximum_lag_on_failover": 1 << 20,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters": map[string]any{
						"max_connections": 30, "max_wal_senders": 10, "max_replication_slots": 10,
						"wal_keep_size": "64MB", "hot_standby": "on", "wal_level": "replica",
						// A lab on a shared machine: durability is not the point.
						"fsync": "off", "synchronous_commit": "off", "full_page_writes": "on",
					},
				},
			},
			"initdb": []any{map[string]string{"encoding": "UTF8"}, map[string]string{"locale": "C"}, "data-checksums", "no-sync"},
		},
		"postgresql": map[string]any{
			"listen":          pgListen,
			"connect_address": m.hostPort(m.PGPort),
			"data_dir":        m.DataDir,
			"bin_dir":         o.BinDir,
			"pgpass":          filepath.Join(m.Dir, "pgpass"),
			// Replicas clone without waiting for a spread checkpoint.
			"basebackup": []any{map[string]string{"checkpoint": "fast"}},
			"authentication": map[string]any{
				"superuser":   map[string]string{"username": "postgres", "password": c.superPW},
				"replication": map[string]string{"username": "replicator", "password": c.superPW},
				"rewind":      map[string]string{"username": "rewinder", "password": c.superPW},
			},
			"parameters": pgParams,
			"pg_hba":     hba,
		},
		"watchdog": map[string]any{"mode": "off"},
		"tags":     tags,
	}
}

func (c *Cluster) start(ctx context.Context) error {
	if c.net != nil {
		if err := c.net.create(ctx); err != nil {
			return err
		}
	}
	err := c.spawn("etcd", false, "", filepath.Join(c.dir, "etcd"), c.opts.Etcd,
		"--name", "lab",
		"--data-dir", filepath.Join(c.dir, "etcd", "data"),
		"--listen-client-urls", c.etcdURL, "--advertise-client-urls", c.etcdURL,
		"--listen-peer-urls", c.etcdPeer, "--initial-advertise-peer-urls", c.etcdPeer,
		"--initial-cluster", "lab="+c.etcdPeer, "--initial-cluster-state", "new",
		"--log-level", "warn")
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd healthy", func(ctx context.Context) error {
		var h struct{ Health string }
		if err := c.getJSON(ctx, c.etcdURL+"/health", &h); err != nil {
			return err
		}
		if h.Health != "true" {
			return fmt.Errorf("etcd health %q", h.Health)
		}
		return nil
	}); err != nil {
		return err
	}
	c.log.Info("etcd up", "url", c.etcdURL)
	for _, m := range c.members {
		if err := c.spawn(m.Name, true, m.NetNS, m.Dir, c.opts.Patroni, filepath.Join(m.Dir, "patroni.yml")); err != nil {
			return err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		return err
	}
	return nil
}

// spawn starts a process in its own process group, as c's user when
// asUser, inside the network namespace at netns unless "", with its output
// in logs/<name>.log.
func (c *Cluster) spawn(name string, asUser bool, netns, dir, bin string, args ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return errors.New("patronilab: cluster stopped")
	}
	logPath := filepath.Join(c.dir, "logs", name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("patronilab: %w", err)
	}
	defer lf.Close() // the child holds its own descriptor
	if netns != "" {
		// nsenter (root) enters the namespace and execs setpriv, which
		// drops to the user, re-arms the parent-death signal (a change of
		// credentials clears it) and execs bin: one process, our child.
		wrap := []string{"--net=" + netns, "--"}
		if asUser {
			wrap = append(wrap, "setpriv", fmt.Sprintf("--reuid=%d", c.uid), fmt.Sprintf("--regid=%d", c.gid),
				"--clear-groups", "--pdeathsig=KILL", "--")
			asUser = false
		}
		args = append(append(wrap, bin), args...)
		bin = "nsenter"
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
		"PYTHONUNBUFFERED=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if asUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.uid, Gid: c.gid}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("patronilab: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	c.procs[name] = p
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.log.Debug("started", "process", name, "pid", cmd.Process.Pid)
	return nil
}

// maxReadyLag is the largest replica lag (bytes) WaitReady accepts: Patroni's
// default maximum_lag_on_failover, so that every replica is a candidate.
const maxReadyLag = 1 << 20

// WaitReady waits until one member leads and runs and every other member
// streams from it within maxReadyLag bytes, as Patroni's /cluster and the
// leader's /patroni report. Call it again after a fault to wait for repair.
func (c *Cluster) WaitReady(ctx context.Context) error {
	return c.waitFor(ctx, fmt.Sprintf("1 leader and %d streaming replicas", len(c.members)-1), c.ready)
}

func (c *Cluster) ready(ctx context.Context) error {
	st, err := c.clusterStatus(ctx)
	if err != nil {
		return err
	}
	if len(st.Members) != len(c.members) {
		return fmt.Errorf("%d of %d members registered", len(st.Members), len(c.members))
	}
	var leader string
	for _, m := range st.Members {
		switch {
		case m.Role == "leader" && m.State == "running":
			leader = m.Name
		case m.Role != "leader" && (m.State == "running" || m.State == "streaming"):
			// Member data is refreshed every loop_wait; wait until the
			// replica's reported position is close to the leader's.
			var lag int64
			if err := json.Unmarshal(m.Lag, &lag); err != nil || lag > maxReadyLag {
				return fmt.Errorf("replica %s lag %s", m.Name, m.Lag)
			}
		default:
			return fmt.Errorf("member %s is %s/%s", m.Name, m.Role, m.State)
		}
	}
	if leader == "" {
		return errors.New("no running leader")
	}
	lm, ok := c.member(leader)
	if !ok {
		return fmt.Errorf("leader %q is not a lab member", leader)
	}
	var node struct {
		Role        string `json:"role"`
		Replication []struct {
			ApplicationName string `json:"application_name"`
			State           string `json:"state"`
		} `json:"replication"`
	}
	if err := c.getJSON(ctx, lm.APIURL()+"/patroni", &node); err != nil {
		return err
	}
	streaming := 0
	for _, r := range node.Replication {
		if r.State == "streaming" {
			streaming++
		}
	}
	if streaming != len(c.members)-1 {
		return fmt.Errorf("leader %s has %d streaming replicas", leader, streaming)
	}
	return nil
}

// clusterJSON is the part of GET /cluster the lab reads.
type clusterJSON struct {
	Members []struct {
		Name  string          `json:"name"`
		Role  string          `json:"role"`
		State string          `json:"state"`
		Lag   json.RawMessage `json:"lag"` // bytes, or "unknown"
	} `json:"members"`
}

// clusterStatus reads GET /cluster from the first member that answers.
func (c *Cluster) clusterStatus(ctx context.Context) (clusterJSON, error) {
	var errs []error
	for _, m := range c.members {
		var st clusterJSON
		err := c.getJSON(ctx, m.APIURL()+"/cluster", &st)
		if err == nil {
			return st, nil
		}
		errs = append(errs, err)
	}
	return clusterJSON{}, errors.Join(errs...)
}

// Leader returns the name of the member that holds the leader lock and
// runs, as Patroni reports it now.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	st, err := c.clusterStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("patronilab: leader: %w", err)
	}
	for _, m := range st.Members {
		if m.Role == "leader" {
			return m.Name, nil
		}
	}
	return "", errors.New("patronilab: leader: no member holds the leader lock")
}

// Members returns the members, in name order.
func (c *Cluster) Members() []Member { return append([]Member(nil), c.members...) }

// MemberNames returns the members' names, in order.
func (c *Cluster) MemberNames() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.Name
	}
	return out
}

func (c *Cluster) member(name string) (Member, bool) {
	for _, m := range c.members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// APIURL returns the base URL of member's REST API ("" if unknown).
func (c *Cluster) APIURL(member string) string {
	m, ok := c.member(member)
	if !ok {
		return ""
	}
	return m.APIURL()
}

// APIURLs returns every member's REST API base URL.
func (c *Cluster) APIURLs() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.APIURL()
	}
	return out
}

// PGPort returns member's PostgreSQL port (0 if unknown).
func (c *Cluster) PGPort(member string) int {
	m, _ := c.member(member)
	return m.PGPort
}

// APIAuth returns the REST API's basic-auth credentials.
func (c *Cluster) APIAuth() (username, password string) { return c.apiUser, c.apiPass }

// Scope is the Patroni cluster name.
func (c *Cluster) Scope() string { return c.opts.Scope }

// Dir is the lab's directory (configs, data, logs).
func (c *Cluster) Dir() string { return c.dir }

// EtcdURL is etcd's client URL.
func (c *Cluster) EtcdURL() string { return c.etcdURL }

// ClientEnv is the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGSSLMODE, PGDATABASE) that connects a client such as pgbench to member's
// PostgreSQL over TCP as the superuser.
func (c *Cluster) ClientEnv(member string) ([]string, error) {
	m, ok := c.member(member)
	if !ok {
		return nil, fmt.Errorf("patronilab: client env: no member %q", member)
	}
	return []string{"PGHOST=" + m.addr(), "PGPORT=" + strconv.Itoa(m.PGPort), "PGUSER=postgres",
		"PGPASSWORD=" + c.superPW, "PGSSLMODE=disable", "PGDATABASE=postgres"}, nil
}

// ExecSQL runs sql on member through psql as the postgres superuser and
// returns psql's unaligned, tuples-only output. In loopback mode psql
// connects over the member's Unix socket; in NetNS mode over TCP to the
// member's address, through the member's network (which Degrade affects).
func (c *Cluster) ExecSQL(ctx context.Context, member, sql string) (string, error) {
	m, ok := c.member(member)
	if !ok {
		return "", fmt.Errorf("patronilab: exec sql: no member %q", member)
	}
	host := m.Dir
	env := []string{"PATH=/usr/bin:/bin", "PGCONNECT_TIMEOUT=5", "LC_ALL=C.UTF-8"}
	if m.NetNS != "" {
		host = m.addr()
		env = append(env, "PGPASSWORD="+c.superPW, "PGSSLMODE=disable")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.BinDir, "psql"), "-X", "-A", "-t", "-q",
		"-v", "ON_ERROR_STOP=1", "-h", host, "-p", strconv.Itoa(m.PGPort), "-U", "postgres", "-d", "postgres",
		"-c", sql)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid}}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("patronilab: exec sql on %s: %w: %s", member, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// StopMode says how StopMember stops a member.
type StopMode int

// Ways to stop a member.
const (
	// Freeze sends SIGSTOP to Patroni and PostgreSQL: a hung host. The
	// leader key expires after ttl; ContinueMember thaws it.
	Freeze StopMode = iota
	// Kill sends SIGKILL to Patroni and PostgreSQL: a crashed host.
	Kill
	// KillPatroni kills only Patroni; PostgreSQL keeps running unmanaged.
	KillPatroni
)

// StopMember freezes or kills member's Patroni and PostgreSQL (process
// groups).
func (c *Cluster) StopMember(name string, mode StopMode) error {
	m, ok := c.member(name)
	if !ok {
		return fmt.Errorf("patronilab: stop member: no member %q", name)
	}
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("patronilab: stop member: %s was not started", name)
	}
	sig := syscall.SIGKILL
	if mode == Freeze {
		sig = syscall.SIGSTOP
	}
	var errs []error
	if err := signalGroup(p.cmd.Process.Pid, sig); err != nil {
		errs = append(errs, fmt.Errorf("patroni: %w", err))
	}
	if mode != KillPatroni {
		if pid, err := postmasterPID(m.DataDir); err == nil {
			if pgid, err := syscall.Getpgid(pid); err == nil {
				errs = append(errs, signalGroup(pgid, sig))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("patronilab: stop member %s: %w", name, err)
	}
	c.log.Info("member stopped", "member", name, "signal", sig.String())
	return nil
}

// ContinueMember thaws a member frozen by StopMember(name, Freeze).
func (c *Cluster) ContinueMember(name string) error {
	m, ok := c.member(name)
	if !ok {
		return fmt.Errorf("patronilab: continue member: no member %q", name)
	}
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("patronilab: continue member: %s was not started", name)
	}
	var errs []error
	if pid, err := postmasterPID(m.DataDir); err == nil {
		if pgid, err := syscall.Getpgid(pid); err == nil {
			errs = append(errs, signalGroup(pgid, syscall.SIGCONT))
		}
	}
	errs = append(errs, signalGroup(p.cmd.Process.Pid, syscall.SIGCONT))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("patronilab: continue member %s: %w", name, err)
	}
	return nil
}

// DumpLogs writes every process log to w.
func (c *Cluster) DumpLogs(w io.Writer) {
	names := []string{"etcd"}
	for _, m := range c.members {
		names = append(names, m.Name)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(c.dir, "logs", n+".log"))
		if err != nil {
			continue
		}
		const tail = 64 << 10
		if len(b) > tail {
			b = append([]byte("...\n"), b[len(b)-tail:]...)
		}
		fmt.Fprintf(w, "===== patronilab %s log =====\n%s\n", n, b)
	}
}

// Stop kills every process of the lab, removes its network in NetNS mode
// (fault tables, veths, bridge, namespaces) and its directory (unless
// Options.KeepDir). It may be called more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return nil
	}
	c.done = true
	procs := c.procs
	c.mu.Unlock()

	var errs []error
	// Patroni first, so that nobody restarts PostgreSQL.
	for _, m := range c.members {
		if p := procs[m.Name]; p != nil {
			_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	// PostgreSQL: immediate shutdown releases shared memory; then make sure.
	var pgs []int
	for _, m := range c.members {
		pid, err := postmasterPID(m.DataDir)
		if err != nil {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			_ = signalGroup(pgid, syscall.SIGCONT) // in case it was frozen
			pgs = append(pgs, pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pgs {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			if pgid, err := syscall.Getpgid(pid); err == nil {
				_ = signalGroup(pgid, syscall.SIGKILL)
			}
		}
	}
	if p := procs["etcd"]; p != nil {
		_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("patronilab: %s (pid %d) did not exit", p.name, p.cmd.Process.Pid))
		}
	}
	if c.net != nil {
		if err := c.net.teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.opts.KeepDir {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("patronilab: remove %s: %w", c.dir, err))
		}
	}
	c.http.CloseIdleConnections()
	return errors.Join(errs...)
}

// waitFor polls check every 200 ms until it returns nil or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		if err := c.exited(); err != nil {
			return fmt.Errorf("patronilab: waiting for %s: %w", what, err)
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("patronilab: waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// exited reports a process of the lab that ended on its own.
func (c *Cluster) exited() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, p.log)
		default:
		}
	}
	return nil
}

func (c *Cluster) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	// Patroni's /patroni answers 503 with a JSON body on a replica; the
	// body is what matters.
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: status %d: %w", url, resp.StatusCode, err)
	}
	return nil
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("patronilab: free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("bad postmaster.pid in %s", dataDir)
	}
	return pid, nil
}

// signalGroup signals the process group pgid; a group already gone is fine.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s to group %d: %w", sig, pgid, err)
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func secret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
