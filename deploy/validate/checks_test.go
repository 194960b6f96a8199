package validate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// objects are the rendered objects by kind and name.
type objects map[string]map[string]runtime.Object

func index(objs []runtime.Object) objects {
	m := objects{}
	for _, o := range objs {
		kind := fmt.Sprintf("%T", o)
		kind = kind[strings.LastIndex(kind, ".")+1:]
		name := o.(interface{ GetName() string }).GetName()
		if m[kind] == nil {
			m[kind] = map[string]runtime.Object{}
		}
		m[kind][name] = o
	}
	return m
}

func lookup(vals map[string]any, path ...string) any {
	var cur any = vals
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func checkCollector(t *testing.T, m objects, vals map[string]any) {
	t.Helper()
	ds, ok := m["DaemonSet"]["mciv-collector"].(*appsv1.DaemonSet)
	if !ok {
		t.Fatalf("no DaemonSet mciv-collector; rendered %v", kinds(m))
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("collector: hostPID is off: database processes are not visible")
	}
	if len(spec.NodeSelector) == 0 {
		t.Error("collector: no nodeSelector: it would run on every node")
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	privileged := lookup(vals, "collector", "privileged") == true
	if privileged {
		if sc.Privileged == nil || !*sc.Privileged {
			t.Error("collector: privileged variant is not privileged")
		}
	} else {
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("collector: privileged by default")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Error("collector: capabilities not dropped first")
		}
		var add []string
		for _, c := range sc.Capabilities.Add {
			add = append(add, string(c))
		}
		for _, want := range []string{"BPF", "PERFMON", "SYS_RESOURCE"} {
			if !slices.Contains(add, want) {
				t.Errorf("collector: capability %s missing from %v", want, add)
			}
		}
		uprobes := lookup(vals, "collector", "uprobes") == true
		if slices.Contains(add, "SYS_ADMIN") != uprobes {
			t.Errorf("collector: SYS_ADMIN in %v, but uprobes=%v", add, uprobes)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("collector: allowPrivilegeEscalation not false")
		}
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	for mountPath, host := range map[string]string{
		"/sys/kernel/tracing": "/sys/kernel/tracing",
		"/sys/fs/bpf":         "/sys/fs/bpf",
		"/sys/fs/cgroup":      "/sys/fs/cgroup",
		"/sys/kernel/btf":     "/sys/kernel/btf",
		"/host/proc":          "/proc",
	} {
		vm, ok := mounts[mountPath]
		if !ok {
			t.Errorf("collector: nothing mounted at %s", mountPath)
			continue
		}
		if hostPaths[vm.Name] != host {
			t.Errorf("collector: %s comes from %q, want host path %s", mountPath, hostPaths[vm.Name], host)
		}
	}
}

func kinds(m objects) []string {
	var out []string
	for k, byName := range m {
		for n := range byName {
			out = append(out, k+"/"+n)
		}
	}
	slices.Sort(out)
	return out
}

// checkWorkloads: replicas, PodDisruptionBudgets, anti-affinity, resources
// and probes of every part; probes must name a port the binary serves.
func checkWorkloads(t *testing.T, m objects, vals map[string]any) {
	t.Helper()
	pdbs := map[string]*policyv1.PodDisruptionBudget{}
	for _, o := range m["PodDisruptionBudget"] {
		p := o.(*policyv1.PodDisruptionBudget)
		pdbs[p.Spec.Selector.MatchLabels["app.kubernetes.io/component"]] = p
	}
	for _, role := range []string{"analyzer", "notifier"} {
		if _, ok := m["Deployment"]["mciv-"+role]; !ok {
			t.Errorf("no Deployment mciv-%s", role)
		}
	}
	for name, o := range m["Deployment"] {
		d := o.(*appsv1.Deployment)
		role := d.Spec.Selector.MatchLabels["app.kubernetes.io/component"]
		section := map[string]string{"actuator": "failover"}[role]
		if section == "" {
			section = role
		}
		if lookup(vals, section, "replicas") == nil && (d.Spec.Replicas == nil || *d.Spec.Replicas < 2) {
			t.Errorf("%s: fewer than 2 replicas by default", name)
		}
		if pdbs[role] == nil {
			t.Errorf("%s: no PodDisruptionBudget", name)
		}
		aff := d.Spec.Template.Spec.Affinity
		if aff == nil || aff.PodAntiAffinity == nil {
			t.Errorf("%s: no pod anti-affinity", name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			checkContainer(t, name, c)
		}
	}
	for name, o := range m["DaemonSet"] {
		for _, c := range o.(*appsv1.DaemonSet).Spec.Template.Spec.Containers {
			checkContainer(t, name, c)
		}
	}
}

func checkContainer(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: no CPU and memory requests", name)
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", name, kind)
			continue
		}
		if want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[kind]; p.HTTPGet.Path != want {
			t.Errorf("%s: %s probe on %s, want %s", name, kind, p.HTTPGet.Path, want)
		}
		if _, err := containerPort(c, p.HTTPGet.Port); err != nil {
			t.Errorf("%s: %s probe: %v", name, kind, err)
		}
	}
}

func containerPort(c corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, error) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, nil
		}
	}
	return corev1.ContainerPort{}, fmt.Errorf("port %s is not a port of container %s", p.String(), c.Name)
}

// secretEnv are the variables that carry secrets into mciv.
var secretEnv = []string{"MCIV_SLACK_TOKEN", "MCIV_SLACK_SIGNING_SECRET", "MCIV_TWILIO_AUTH_TOKEN", "PATRONI_PASSWORD"}

// secretKey matches configuration keys that hold secrets.
var secretKey = regexp.MustCompile(`^(token|password|signing_secret|auth_token|nkey_seed)$`)

// checkSecrets: no Secret is rendered; every Secret a pod uses is one the
// values name; secrets reach pods only through secretKeyRef or a secret
// volume, and never appear in a ConfigMap.
func checkSecrets(t *testing.T, m objects, vals map[string]any) {
	t.Helper()
	if len(m["Secret"]) > 0 {
		t.Errorf("the chart renders Secrets %v: it must only reference existing ones", kinds(objects{"Secret": m["Secret"]}))
	}
	declared := declaredSecrets(t, vals)
	for name, spec := range podSpecs(m) {
		for _, v := range spec.Volumes {
			if v.Secret != nil && !declared[v.Secret.SecretName] {
				t.Errorf("%s: secret volume %q is not declared in values", name, v.Secret.SecretName)
			}
		}
		for _, c := range spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					if !declared[e.ValueFrom.SecretKeyRef.Name] {
						t.Errorf("%s: env %s from undeclared Secret %q", name, e.Name, e.ValueFrom.SecretKeyRef.Name)
					}
					continue
				}
				if slices.Contains(secretEnv, e.Name) {
					t.Errorf("%s: secret env %s is inlined", name, e.Name)
				}
			}
		}
	}
	for name, o := range m["ConfigMap"] {
		for key, data := range o.(*corev1.ConfigMap).Data {
			var doc any
			if err := yaml.Unmarshal([]byte(data), &doc); err != nil {
				continue
			}
			walk(doc, func(k string, v any) {
				if secretKey.MatchString(k) && v != nil && v != "" {
					t.Errorf("ConfigMap %s key %s: secret field %q is inlined", name, key, k)
				}
			})
		}
	}
}

func walk(doc any, f func(string, any)) {
	switch d := doc.(type) {
	case map[string]any:
		for k, v := range d {
			f(k, v)
			walk(v, f)
		}
	case []any:
		for _, v := range d {
			walk(v, f)
		}
	}
}

// declaredSecrets are the Secret names the values refer to: any map with
// a secretName key.
func declaredSecrets(t *testing.T, vals map[string]any) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	defaults := map[string]any{}
	data, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &defaults); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []any{defaults, vals} {
		walk(doc, func(k string, v any) {
			if s, ok := v.(string); ok && k == "secretName" && s != "" {
				out[s] = true
			}
		})
	}
	return out
}

func podSpecs(m objects) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for n, o := range m["Deployment"] {
		out["Deployment/"+n] = o.(*appsv1.Deployment).Spec.Template.Spec
	}
	for n, o := range m["DaemonSet"] {
		out["DaemonSet/"+n] = o.(*appsv1.DaemonSet).Spec.Template.Spec
	}
	return out
}

// checkRules writes the rules ConfigMap to a directory and runs
// `mciv rules check` on it: the chart's rules must load with no warning.
func checkRules(t *testing.T, m objects, bin string) string {
	t.Helper()
	cm, ok := m["ConfigMap"]["mciv-rules"].(*corev1.ConfigMap)
	if !ok {
		t.Fatal("no ConfigMap mciv-rules")
	}
	dir := t.TempDir()
	for name, body := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, "rules", "check", dir).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning:") {
		t.Errorf("mciv rules check on the rules ConfigMap: %v\n%s", err, out)
	}
	return dir
}

// checkConfigs starts every part of mciv with the configuration file its
// pod mounts (listen addresses moved to loopback, NATS unreachable): the
// binary must accept the file, and every port a probe or Service uses must
// be one the configuration makes the binary listen on.
func checkConfigs(t *testing.T, m objects, bin string) {
	t.Helper()
	rulesDir := checkRules(t, m, bin)
	natsURL := startNATS(t, bin)
	for name, spec := range podSpecs(m) {
		c := spec.Containers[0]
		part, cfgPath := c.Args[0], ""
		for i, a := range c.Args {
			if a == "--config" && i+1 < len(c.Args) {
				cfgPath = c.Args[i+1]
			}
		}
		data := mountedFile(t, m, spec, c, cfgPath)
		var cfg map[string]any
		if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
			t.Errorf("%s: %s: %v", name, cfgPath, err)
			continue
		}
		// Ports: what the configuration listens on is what the pod declares.
		wantPort := map[string]any{
			"metrics": lookup(cfg, "metrics", "listen"),
			"slack":   lookup(cfg, "slack", "interactivity", "listen"),
			"twilio":  lookup(cfg, "twilio", "listen"),
		}
		for _, cp := range c.Ports {
			listen, _ := wantPort[cp.Name].(string)
			_, port, _ := strings.Cut(listen, ":")
			if port != strconv.Itoa(int(cp.ContainerPort)) {
				t.Errorf("%s: container port %s=%d, but the configuration listens on %q", name, cp.Name, cp.ContainerPort, listen)
			}
		}
		if creds, _ := lookup(cfg, "nats", "creds").(string); !mountedPath(c, creds) {
			t.Errorf("%s: nats.creds %q is not in a mounted volume", name, creds)
		}
		// Run the binary on a local copy.
		local := relocate(cfg, rulesDir, natsURL)
		var probes []string
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && p.HTTPGet != nil {
				probes = append(probes, p.HTTPGet.Path)
			}
		}
		out, err := runPart(t, bin, part, local, c.Env, probes)
		if err != nil {
			t.Errorf("%s: mciv %s: %v\n%s", name, part, err, out)
		}
	}
}

func mountedPath(c corev1.Container, p string) bool {
	for _, vm := range c.VolumeMounts {
		if p == vm.MountPath || strings.HasPrefix(p, vm.MountPath+"/") {
			return true
		}
	}
	return false
}

// mountedFile returns the ConfigMap data mounted at path in container c.
func mountedFile(t *testing.T, m objects, spec corev1.PodSpec, c corev1.Container, path string) string {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != path {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm, ok := m["ConfigMap"][v.ConfigMap.Name].(*corev1.ConfigMap)
				if !ok {
					t.Fatalf("%s mounts missing ConfigMap %s", c.Name, v.ConfigMap.Name)
				}
				data, ok := cm.Data[vm.SubPath]
				if !ok {
					t.Fatalf("ConfigMap %s has no key %s", cm.Name, vm.SubPath)
				}
				return data
			}
		}
	}
	t.Fatalf("%s: nothing mounted at %s", c.Name, path)
	return ""
}

// relocate moves a pod's configuration to this machine: loopback listeners
// on free ports, the test's NATS (without the pod's credentials file),
// the rendered rules directory.
func relocate(cfg map[string]any, rulesDir, natsURL string) map[string]any {
	set := func(v string, path ...string) {
		cur := cfg
		for _, p := range path[:len(path)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				return
			}
			cur = next
		}
		if _, ok := cur[path[len(path)-1]]; ok {
			cur[path[len(path)-1]] = v
		}
	}
	set("127.0.0.1:0", "metrics", "listen")
	set("127.0.0.1:0", "slack", "interactivity", "listen")
	set("127.0.0.1:0", "twilio", "listen")
	set(natsURL, "nats", "url")
	if _, ok := lookup(cfg, "nats", "replicas").(int); ok {
		cfg["nats"].(map[string]any)["replicas"] = 1 // the test's NATS is one server
	}
	if _, ok := lookup(cfg, "nats", "input_max_bytes").(int); ok {
		cfg["nats"].(map[string]any)["input_max_bytes"] = 64 << 20 // and stores less than a fleet's
	}
	if n, ok := cfg["nats"].(map[string]any); ok {
		delete(n, "creds")
	}
	if a, ok := cfg["analyzer"].(map[string]any); ok {
		a["rules"] = []any{rulesDir}
	}
	return cfg
}

// startNATS runs `mciv up` with every part off: only its embedded NATS
// server (JetStream on), on a free loopback port, until the test ends.
func startNATS(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf("host: nats\ndata_dir: %s\nnats: {listen: %q}\nmetrics: {listen: \"\"}\n"+
		"collector: {enabled: false}\nanalyzer: {enabled: false}\nnotifier: {enabled: false}\n", filepath.Join(dir, "data"), addr)
	path := filepath.Join(dir, "nats.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "up", "--config", path)
	cmd.Env = append(os.Environ(), "MCIV_NATS_URL=")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the test's NATS (mciv up, parts off) did not listen on %s:\n%s", addr, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// servingMetrics finds the metrics address in mciv's log line.
var servingMetrics = regexp.MustCompile(`serving metrics.*url=http://([^/ ]+)/metrics`)

// runPart runs `mciv PART --config` with placeholder values for the secret
// environment the pod gets from Secrets, until every probe path answers
// 200 on its metrics listener (or 30 s pass), and returns its output.
func runPart(t *testing.T, bin, part string, cfg map[string]any, env []corev1.EnvVar, probes []string) (string, error) {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), part+".yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, part, "--config", path)
	// A pod's relative paths (data_dir ./data) land in a directory of the
	// test's, not in the source tree.
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "MCIV_NATS_URL=")
	for _, e := range env {
		cmd.Env = append(cmd.Env, e.Name+"=placeholder-from-secret")
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { cancel(); <-exited }()
	deadline := time.Now().Add(30 * time.Second)
	pending := append([]string(nil), probes...)
	last := map[string]string{}
	for len(pending) > 0 {
		select {
		case <-exited:
			return out.String(), fmt.Errorf("exited before its probes answered 200 (last answers %v)", last)
		default:
		}
		if time.Now().After(deadline) {
			return out.String(), fmt.Errorf("probes %v did not answer 200 within 30 s (last answers %v)", pending, last)
		}
		if mm := servingMetrics.FindStringSubmatch(out.String()); mm != nil {
			var still []string
			for _, p := range pending {
				code, body, err := probeGet("http://" + mm[1] + p)
				if err != nil || code != http.StatusOK {
					last[p] = fmt.Sprintf("%d %q %v", code, body, err)
					still = append(still, p)
				}
			}
			pending = still
		}
		time.Sleep(200 * time.Millisecond)
	}
	return out.String(), nil
}

func probeGet(url string) (int, string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// checkFleet: the analyzers' fleet mode follows analyzer.partitioned
// (auto: on with more than one replica), the partitions are at least the
// replicas, and the nats values reach every part's configuration.
func checkFleet(t *testing.T, m objects, vals map[string]any) {
	t.Helper()
	d, ok := m["Deployment"]["mciv-analyzer"].(*appsv1.Deployment)
	if !ok {
		t.Fatal("no Deployment mciv-analyzer")
	}
	replicas := int(*d.Spec.Replicas)
	cm, ok := m["ConfigMap"]["mciv-config"].(*corev1.ConfigMap)
	if !ok {
		t.Fatal("no ConfigMap mciv-config")
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["analyzer.yaml"]), &cfg); err != nil {
		t.Fatalf("analyzer.yaml: %v", err)
	}
	partitioned, _ := lookup(cfg, "analyzer", "partitioned").(bool)
	setting := fmt.Sprint(lookup(vals, "analyzer", "partitioned"))
	switch setting {
	case "<nil>", "auto":
		if partitioned != (replicas > 1) {
			t.Errorf("analyzer.partitioned auto with %d replicas rendered partitioned=%v", replicas, partitioned)
		}
	default:
		if fmt.Sprint(partitioned) != setting {
			t.Errorf("analyzer.partitioned %s rendered partitioned=%v", setting, partitioned)
		}
	}
	if replicas > 1 && !partitioned && setting != "false" {
		t.Errorf("%d analyzers without fleet mode", replicas)
	}
	parts, _ := lookup(cfg, "nats", "partitions").(int)
	if parts == 0 {
		parts = 16 // bus.DefaultPartitions
	}
	if partitioned && parts < replicas {
		t.Errorf("%d partitions for %d analyzers: some would own none", parts, replicas)
	}
	for key, yamlKey := range map[string]string{"replicas": "replicas", "partitions": "partitions", "inputMaxAge": "input_max_age", "inputMaxBytes": "input_max_bytes"} {
		want := lookup(vals, "nats", key)
		if want == nil || plain(want) == "0" || want == "" {
			continue
		}
		for file, data := range cm.Data {
			var c map[string]any
			if err := yaml.Unmarshal([]byte(data), &c); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if got := lookup(c, "nats", yamlKey); plain(got) != plain(want) {
				t.Errorf("%s: nats.%s = %v, want nats.%s %v from the values", file, yamlKey, got, key, want)
			}
		}
	}
}

// plain prints a YAML or JSON value: integral floats (JSON numbers) as integers.
func plain(v any) string {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return fmt.Sprint(v)
}
