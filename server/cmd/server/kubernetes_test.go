package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/server"
	"go.yaml.in/yaml/v3"
)

// k8sObject is the part of a Kubernetes object the check reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		ClusterIP                string           `yaml:"clusterIP"`
		PublishNotReadyAddresses bool             `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]any   `yaml:"selector"` // Service: labels; others: matchLabels
		Ports                    []k8sServicePort `yaml:"ports"`
		ServiceName              string           `yaml:"serviceName"`
		Template                 k8sPodTemplate   `yaml:"template"`
		MaxUnavailable           any              `yaml:"maxUnavailable"`
		Extra                    map[string]any   `yaml:",inline"`
	} `yaml:"spec"`
}

type k8sServicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Containers []k8sContainer `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string         `yaml:"name"`
		Value     *string        `yaml:"value"`
		ValueFrom map[string]any `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// probeElector is the least Elector that lets server.New build the routes.
type probeElector struct{}

func (probeElector) Join(context.Context) error { return nil }
func (probeElector) View() election.View        { return election.View{} }
func (probeElector) Observe(ctx context.Context) <-chan election.View {
	return make(chan election.View)
}
func (probeElector) Members(context.Context) ([]election.Member, error) { return nil, nil }
func (probeElector) Resign(context.Context) error                       { return nil }
func (probeElector) Close() error                                       { return nil }

// TestKubernetesExample checks docker/kubernetes/zkv.yaml against the server: the
// container's arguments and ZKV_ variables parse with the real flag set, the ports agree
// (server, container, Services), the probes use real routes (liveness /healthz, readiness
// not /readyz, for the reason the file gives), and the selectors find the pods.
func TestKubernetesExample(t *testing.T) {
	data, err := os.ReadFile("../../../docker/kubernetes/zkv.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("zkv.yaml: %v", err)
		}
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}
	sts, ok := objs["StatefulSet/zkv"]
	if !ok || len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("no StatefulSet zkv with one container: %v", objs)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	labels := sts.Spec.Template.Metadata.Labels

	// The arguments, with the pod's $(VARS) filled in, and the ZKV_ variables parse.
	vars := map[string]string{"POD_NAME": "zkv-0", "POD_NAMESPACE": "default"}
	envs := map[string]string{}
	flags := serverFlags(t)
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			envs[e.Name] = *e.Value
		case e.ValueFrom != nil:
			envs[e.Name] = "from-" + e.Name
		}
		if name, ok := strings.CutPrefix(e.Name, "ZKV_"); ok && !slices.Contains(flags, strings.ToLower(name)) {
			t.Errorf("env %s names no flag", e.Name)
		}
	}
	ref := regexp.MustCompile(`\$\((\w+)\)`)
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = ref.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := vars[ref.FindStringSubmatch(m)[1]]
			if !ok {
				t.Errorf("argument %q uses %s, which the pod does not define", a, m)
			}
			return v
		})
	}
	var stderr bytes.Buffer
	opts, err := parseFlags(args, func(k string) string { return envs[k] }, &stderr)
	if err != nil {
		t.Fatalf("the container's arguments do not parse: %v\n%s", err, stderr.String())
	}
	if opts.cfg.ClusterToken == "" || opts.logFormat != "json" || !opts.cfg.SyncOnJoin {
		t.Errorf("config from the manifest: token set %v, log format %q, sync_on_join %v", opts.cfg.ClusterToken != "", opts.logFormat, opts.cfg.SyncOnJoin)
	}
	if want := "zkv-0.zkv.default.svc.cluster.local:" + strconv.Itoa(opts.cfg.Port); opts.cfg.Address != want {
		t.Errorf("-advertise %q, want %q: the pod's name under the headless Service", opts.cfg.Address, want)
	}

	// Ports: the server's -port is the container's port "http", which the Services target.
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != opts.cfg.Port {
		t.Fatalf("container ports %+v, server port %d", c.Ports, opts.cfg.Port)
	}
	portName := c.Ports[0].Name
	portOK := func(p any) bool { return p == portName || p == opts.cfg.Port }

	// Probes: real routes of the server, on its port.
	srv, err := server.New(server.Config{Port: opts.cfg.Port}, server.Deps{Elector: probeElector{}})
	if err != nil {
		t.Fatal(err)
	}
	route := func(path string) int {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	for name, p := range map[string]*k8sProbe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", name)
			continue
		}
		if !portOK(p.HTTPGet.Port) {
			t.Errorf("%s probe port %v, want %s or %d", name, p.HTTPGet.Port, portName, opts.cfg.Port)
		}
		if code := route(p.HTTPGet.Path); code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
			t.Errorf("%s probe path %s is not a route of the server (%d)", name, p.HTTPGet.Path, code)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %s, want /healthz: a server that is up but has no ZooKeeper must not be restarted", c.LivenessProbe.HTTPGet.Path)
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path == "/readyz" {
		t.Errorf("readiness probe /readyz would take every pod out of the Service during a ZooKeeper outage, and stale reads with it")
	}

	// Services and the budget select the pods; the headless one is the StatefulSet's.
	selects := func(sel map[string]any) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	headless, ok := objs["Service/"+sts.Spec.ServiceName]
	if !ok || headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("serviceName %q: want a headless Service (clusterIP None) publishing not-ready pods", sts.Spec.ServiceName)
	}
	for key, o := range objs {
		switch o.Kind {
		case "Service":
			if !selects(o.Spec.Selector) {
				t.Errorf("%s selects %v, not the pods' labels %v", key, o.Spec.Selector, labels)
			}
			for _, p := range o.Spec.Ports {
				if !portOK(p.TargetPort) || p.Port != opts.cfg.Port {
					t.Errorf("%s port %+v: want port %d targeting %s", key, p, opts.cfg.Port, portName)
				}
			}
		case "PodDisruptionBudget", "StatefulSet":
			ml, _ := o.Spec.Selector["matchLabels"].(map[string]any)
			if !selects(ml) {
				t.Errorf("%s selects %v, not the pods' labels %v", key, o.Spec.Selector, labels)
			}
		}
	}
	if _, ok := objs["PodDisruptionBudget/zkv"]; !ok {
		t.Error("no PodDisruptionBudget zkv")
	}
}
