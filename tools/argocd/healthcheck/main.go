// Command healthcheck runs a health_test.yaml (Argo CD's built-in test format) through Argo CD's
// own code: the argocd-cm ConfigMap a user applies is read by Argo CD's settings manager, and
// each object is assessed by gitops-engine's GetResourceHealth over util/lua's
// ResourceHealthOverrides, the functions the application controller calls (the same path as
// `argocd admin settings resource-overrides health`, without building the whole CLI).
//
// Usage: healthcheck ARGOCD_CM_YAML HEALTH_TEST_YAML
// stdout: one JSON line per case {"inputPath", "want": {status, message}, "got": {status, message}}
// or {"inputPath", "error"}; exit 1 when any case differs, 2 on bad input.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

type testFile struct {
	Tests []struct {
		InputPath    string               `json:"inputPath"`
		HealthStatus *health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type line struct {
	InputPath string               `json:"inputPath"`
	Want      *health.HealthStatus `json:"want,omitempty"`
	Got       *health.HealthStatus `json:"got,omitempty"`
	Error     string               `json:"error,omitempty"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "healthcheck: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: healthcheck ARGOCD_CM_YAML HEALTH_TEST_YAML")
	}
	var cm corev1.ConfigMap
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		fail("%s is not a ConfigMap: %v", os.Args[1], err)
	}
	namespace := cm.Namespace
	if namespace == "" {
		namespace = "argocd"
		cm.Namespace = namespace
	}
	mgr := settings.NewSettingsManager(context.Background(), fake.NewClientset(&cm), namespace)
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		fail("argocd-cm: %v", err)
	}
	var tests testFile
	if data, err = os.ReadFile(os.Args[2]); err != nil {
		fail("%v", err)
	}
	if err := yaml.Unmarshal(data, &tests); err != nil || len(tests.Tests) == 0 {
		fail("%s: no tests (%v)", os.Args[2], err)
	}
	differ := false
	out := json.NewEncoder(os.Stdout)
	for _, tc := range tests.Tests {
		res := line{InputPath: tc.InputPath, Want: tc.HealthStatus}
		obj := &unstructured.Unstructured{}
		raw, err := os.ReadFile(filepath.Join(filepath.Dir(os.Args[2]), tc.InputPath))
		if err == nil {
			err = yaml.Unmarshal(raw, &obj.Object)
		}
		if err == nil {
			res.Got, err = health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
		}
		if err != nil {
			res.Error = err.Error()
		}
		if res.Error != "" || res.Got == nil || *res.Got != *tc.HealthStatus {
			differ = true
		}
		_ = out.Encode(res)
	}
	if differ {
		os.Exit(1)
	}
}
