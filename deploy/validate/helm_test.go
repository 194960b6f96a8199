package validate

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metallbv1beta1 "go.universe.tf/metallb/api/v1beta1"
)

// variant is one documented way to install the chart: the defaults, or
// the defaults with one of deploy/helm/mciv/examples/*.yaml.
type variant struct {
	name   string
	values map[string]any
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "helm", "mciv") }

func variants(t *testing.T) []variant {
	t.Helper()
	out := []variant{{name: "defaults", values: map[string]any{}}}
	files, err := filepath.Glob(filepath.Join(chartDir(t), "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in the chart: %v", err)
	}
	for _, f := range files {
		vals, err := common.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, variant{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), values: vals})
	}
	return out
}

// render is `helm template mciv deploy/helm/mciv -n mciv -f values`,
// through helm's library.
func render(t *testing.T, values map[string]any) string {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	cfg := action.NewConfiguration()
	cfg.SetLogger(slog.New(slog.DiscardHandler).Handler())
	inst := action.NewInstall(cfg)
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName = "mciv"
	inst.Namespace = "mciv"
	inst.Replace = true
	inst.DisableHooks = true
	inst.KubeVersion = kubeVersion(t)
	rel, err := inst.RunWithContext(context.Background(), ch, values)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("helm template returned %T", rel)
	}
	return r.Manifest
}

// decoder decodes YAML strictly (unknown and duplicate fields are errors)
// into the typed objects of k8s.io/api, the Prometheus Operator and MetalLB.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, monitoringv1.AddToScheme, metallbv1beta1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
}

// decodeAll splits a manifest stream and decodes every document strictly.
func decodeAll(t *testing.T, manifest string) []runtime.Object {
	t.Helper()
	dec := decoder(t)
	rd := utilyaml.NewYAMLReader(bufioReader(manifest))
	var objs []runtime.Object
	for {
		doc, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("split manifest: %v", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("decode %v: %v\n%s", gvk, err, doc)
			continue
		}
		objs = append(objs, obj)
	}
	return objs
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for l := range bytes.SplitSeq(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// kubeVersion is the Kubernetes version the chart is rendered for: that of
// the k8s.io modules the objects are decoded with.
func kubeVersion(t *testing.T) *common.KubeVersion {
	t.Helper()
	kv, err := common.ParseKubeVersion("v1.37.0")
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestHelmLint(t *testing.T) {
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = "mciv"
			lint.KubeVersion = kubeVersion(t)
			res := lint.Run([]string{chartDir(t)}, v.values)
			for _, m := range res.Messages {
				t.Logf("lint: %s", m)
			}
			if len(res.Errors) > 0 {
				t.Fatalf("helm lint --strict: %v", res.Errors)
			}
		})
	}
}

func TestHelmTemplate(t *testing.T) {
	bin := mcivBinary(t)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := decodeAll(t, render(t, v.values))
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			m := index(objs)
			checkCollector(t, m, v.values)
			checkWorkloads(t, m, v.values)
			checkFleet(t, m, v.values)
			checkSecrets(t, m, v.values)
			checkRules(t, m, bin)
			checkConfigs(t, m, bin)
			if dir := os.Getenv("MCIV_RENDER_DIR"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, v.name+".yaml"), []byte(render(t, v.values)), 0o644)
			}
		})
	}
}

func TestChartRulesAreTheDefaults(t *testing.T) {
	root := repoRoot(t)
	want, _ := filepath.Glob(filepath.Join(root, "rules", "default", "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(chartDir(t), "files", "rules", "*.yaml"))
	base := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(base(want), base(got)) {
		t.Fatalf("chart rules %v, rules/default %v: copy rules/default/*.yaml to deploy/helm/mciv/files/rules/", base(got), base(want))
	}
	for _, p := range want {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join(chartDir(t), "files", "rules", filepath.Base(p)))
		if !bytes.Equal(a, b) {
			t.Errorf("deploy/helm/mciv/files/rules/%s differs from rules/default: copy it again", filepath.Base(p))
		}
	}
}
