package manifests_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
	"github.com/caddy-k8s-router/caddy-k8s-router/webhook"
)

// baseObjects renders manifests/.
func baseObjects(t *testing.T) objects {
	t.Helper()

	return render(t, filepath.Join(repoRoot(t), "manifests"))
}

func TestBaseObjects(t *testing.T) {
	objs := baseObjects(t)

	want := map[string]string{
		"Namespace":                    routerNamespace,
		"ServiceAccount":               appName,
		"Role":                         appName,
		"RoleBinding":                  appName,
		"Deployment":                   appName,
		"PodDisruptionBudget":          appName,
		"MutatingWebhookConfiguration": appName,
	}
	for kind, name := range want {
		objs.find(t, kind, name)
	}
	objs.find(t, "Service", appName)
	objs.find(t, "Service", webhookService)
	objs.find(t, "ConfigMap", settingsMap)
	objs.find(t, "ConfigMap", caddyConfigMap)

	if got := len(objs); got != len(want)+4 {
		t.Errorf("base renders %d objects, expected %d", got, len(want)+4)
	}
	if secrets := objs.of("Secret"); len(secrets) != 0 {
		t.Errorf("base renders %d Secrets, expected none: the serving key pair comes from an overlay", len(secrets))
	}
}

func TestBaseNamespaces(t *testing.T) {
	objs := baseObjects(t)

	for _, obj := range objs {
		switch obj.GetKind() {
		case "Namespace", "MutatingWebhookConfiguration":
			if ns := obj.GetNamespace(); ns != "" {
				t.Errorf("cluster-scoped %s %s has namespace %q", obj.GetKind(), obj.GetName(), ns)
			}
		case "Role", "RoleBinding":
			if ns := obj.GetNamespace(); ns != watchedNamespace {
				t.Errorf("%s %s is in namespace %q, expected the watched namespace %q", obj.GetKind(), obj.GetName(), ns, watchedNamespace)
			}
		default:
			if ns := obj.GetNamespace(); ns != routerNamespace {
				t.Errorf("%s %s is in namespace %q, expected the router's namespace %q", obj.GetKind(), obj.GetName(), ns, routerNamespace)
			}
		}
	}
}

func TestRoleRules(t *testing.T) {
	role := convert[rbacv1.Role](t, baseObjects(t).find(t, "Role", appName))

	// The verbs each resource needs, keyed by "group/resource".
	want := map[string][]string{
		"apps/deployments": {"get", "list", "watch", "patch"},
		"/pods":            {"get", "list", "watch"},
		"/events":          {"create", "patch"},
	}

	got := map[string][]string{}
	for _, rule := range role.Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %+v uses resourceNames or nonResourceURLs, expected plain resource rules", rule)
		}
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				key := group + "/" + resource
				got[key] = append(got[key], rule.Verbs...)
			}
		}
	}

	for key, verbs := range got {
		slices.Sort(verbs)
		wantVerbs := slices.Sorted(slices.Values(want[key]))
		if !slices.Equal(verbs, wantVerbs) {
			t.Errorf("%s verbs = %v, expected %v", key, verbs, wantVerbs)
		}
	}
	for key := range want {
		if _, ok := got[key]; !ok {
			t.Errorf("no rule for %s", key)
		}
	}
}

func TestRoleBindingSubject(t *testing.T) {
	binding := convert[rbacv1.RoleBinding](t, baseObjects(t).find(t, "RoleBinding", appName))

	if binding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: appName}) {
		t.Errorf("roleRef = %+v, expected the Role %s", binding.RoleRef, appName)
	}
	want := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: appName, Namespace: routerNamespace}}
	if !slices.Equal(binding.Subjects, want) {
		t.Errorf("subjects = %+v, expected %+v", binding.Subjects, want)
	}
}

func TestWebhookConfiguration(t *testing.T) {
	config := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, baseObjects(t).find(t, "MutatingWebhookConfiguration", appName))
	if len(config.Webhooks) != 1 {
		t.Fatalf("got %d webhooks, expected 1", len(config.Webhooks))
	}
	hook := config.Webhooks[0]

	if hook.FailurePolicy == nil || *hook.FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("failurePolicy = %v, expected Ignore", hook.FailurePolicy)
	}
	if hook.SideEffects == nil || *hook.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("sideEffects = %v, expected None", hook.SideEffects)
	}
	if hook.TimeoutSeconds == nil || *hook.TimeoutSeconds > 5 {
		t.Errorf("timeoutSeconds = %v, expected at most 5", hook.TimeoutSeconds)
	}
	if !slices.Equal(hook.AdmissionReviewVersions, []string{"v1"}) {
		t.Errorf("admissionReviewVersions = %v, expected [v1]", hook.AdmissionReviewVersions)
	}
	if hook.ReinvocationPolicy == nil || *hook.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("reinvocationPolicy = %v, expected IfNeeded", hook.ReinvocationPolicy)
	}

	wantRules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{"apps"},
			APIVersions: []string{"v1"},
			Resources:   []string{"deployments"},
			Scope:       new(admissionregistrationv1.NamespacedScope),
		},
	}}
	if got, _ := json.Marshal(hook.Rules); string(got) != mustJSON(t, wantRules) {
		t.Errorf("rules = %s, expected %s", got, mustJSON(t, wantRules))
	}

	service := hook.ClientConfig.Service
	if service == nil {
		t.Fatal("clientConfig.service is missing")
	}
	if service.Name != webhookService || service.Namespace != routerNamespace {
		t.Errorf("clientConfig.service = %s/%s, expected %s/%s", service.Namespace, service.Name, routerNamespace, webhookService)
	}
	if service.Path == nil || *service.Path != webhook.Path {
		t.Errorf("clientConfig.service.path = %v, expected %s", service.Path, webhook.Path)
	}
	if service.Port == nil || *service.Port != 443 {
		t.Errorf("clientConfig.service.port = %v, expected 443", service.Port)
	}
	if len(hook.ClientConfig.CABundle) != 0 {
		t.Error("base sets a caBundle, expected it to come from an overlay")
	}
}

func TestWebhookNamespaceSelector(t *testing.T) {
	config := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, baseObjects(t).find(t, "MutatingWebhookConfiguration", appName))
	selector, err := metav1.LabelSelectorAsSelector(config.Webhooks[0].NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		namespace string
		want      bool
	}{
		{watchedNamespace, true},
		{routerNamespace, false},
		{"kube-system", false},
		{"default", false},
		{"gitspaces-other", false},
	}
	for _, tt := range tests {
		t.Run(tt.namespace, func(t *testing.T) {
			// The API server sets this label on every namespace.
			nsLabels := labels.Set{corev1.LabelMetadataName: tt.namespace}
			if got := selector.Matches(nsLabels); got != tt.want {
				t.Errorf("selector %s matches %s = %t, expected %t", selector, tt.namespace, got, tt.want)
			}
		})
	}
}

func TestPodSecurity(t *testing.T) {
	pod := baseObjects(t).deployment(t).Spec.Template.Spec

	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Error("pod securityContext.runAsUser is unset or 0: Caddy's official image defaults to root")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod automounts the ServiceAccount token, expected only the router container to mount it")
	}

	wantAdd := map[string][]corev1.Capability{
		"router": nil,
		// The official Caddy image's binary carries this file capability.
		"caddy": {"NET_BIND_SERVICE"},
	}
	for name, add := range wantAdd {
		c := container(t, pod, name)
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: capabilities.drop is not [ALL]", name)
		}
		if sc.Capabilities != nil && !slices.Equal(sc.Capabilities.Add, add) {
			t.Errorf("%s: capabilities.add = %v, expected %v", name, sc.Capabilities.Add, add)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", name)
		}
	}
}

func TestContainerResources(t *testing.T) {
	pod := baseObjects(t).deployment(t).Spec.Template.Spec

	for _, c := range pod.Containers {
		for _, resource := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			request, hasRequest := c.Resources.Requests[resource]
			limit, hasLimit := c.Resources.Limits[resource]
			if !hasRequest {
				t.Errorf("%s: no %s request", c.Name, resource)
			}
			if !hasLimit {
				t.Errorf("%s: no %s limit", c.Name, resource)
			}
			if hasRequest && hasLimit && request.Cmp(limit) > 0 {
				t.Errorf("%s: %s request %s exceeds limit %s", c.Name, resource, request.String(), limit.String())
			}
		}
	}
}

func TestRouterProbes(t *testing.T) {
	router := container(t, baseObjects(t).deployment(t).Spec.Template.Spec, "router")

	tests := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", router.LivenessProbe, "/healthz"},
		{"readiness", router.ReadinessProbe, "/readyz?exclude=apiserver&exclude=route-sync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.probe == nil || tt.probe.HTTPGet == nil {
				t.Fatalf("%s probe is not an HTTP GET", tt.name)
			}
			if tt.probe.HTTPGet.Path != tt.path {
				t.Errorf("path = %s, expected %s", tt.probe.HTTPGet.Path, tt.path)
			}
			if port := containerPort(t, router, tt.probe.HTTPGet.Port); port != 8081 {
				t.Errorf("port = %d, expected 8081, the router's default --health-addr", port)
			}
		})
	}
}

func TestServicePorts(t *testing.T) {
	objs := baseObjects(t)
	pod := objs.deployment(t).Spec.Template

	tests := []struct {
		service       string
		port          int32
		container     string
		containerPort int32
	}{
		{appName, 80, "caddy", 8080},
		{appName, 443, "caddy", 8443},
		{webhookService, 443, "router", 9443},
	}
	for _, tt := range tests {
		service := convert[corev1.Service](t, objs.find(t, "Service", tt.service))
		if !labels.SelectorFromSet(service.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("Service %s selector %v does not match the pod labels %v", tt.service, service.Spec.Selector, pod.Labels)
		}

		index := slices.IndexFunc(service.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == tt.port })
		if index < 0 {
			t.Errorf("Service %s has no port %d", tt.service, tt.port)
			continue
		}
		c := container(t, pod.Spec, tt.container)
		if got := containerPort(t, c, service.Spec.Ports[index].TargetPort); got != tt.containerPort {
			t.Errorf("Service %s port %d reaches %s port %d, expected %d", tt.service, tt.port, tt.container, got, tt.containerPort)
		}
	}
}

func TestDisruptionBudget(t *testing.T) {
	objs := baseObjects(t)
	deployment := objs.deployment(t)
	pdb := convert[policyv1.PodDisruptionBudget](t, objs.find(t, "PodDisruptionBudget", appName))

	replicas := *deployment.Spec.Replicas
	if replicas < 2 {
		t.Errorf("replicas = %d, expected more than one", replicas)
	}

	selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !selector.Matches(labels.Set(deployment.Spec.Template.Labels)) {
		t.Errorf("PDB selector %s does not match the pod labels", selector)
	}

	maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(replicas), true)
	if err != nil || pdb.Spec.MaxUnavailable == nil {
		t.Fatalf("maxUnavailable = %v: %v", pdb.Spec.MaxUnavailable, err)
	}
	if maxUnavailable < 1 || maxUnavailable >= int(replicas) {
		t.Errorf("maxUnavailable = %d with %d replicas, expected drains to proceed while one pod keeps serving", maxUnavailable, replicas)
	}
}

func TestRouterSettings(t *testing.T) {
	objs := baseObjects(t)
	settings := convert[corev1.ConfigMap](t, objs.find(t, "ConfigMap", settingsMap))
	router := container(t, objs.deployment(t).Spec.Template.Spec, "router")

	uses := slices.ContainsFunc(router.EnvFrom, func(e corev1.EnvFromSource) bool {
		return e.ConfigMapRef != nil && e.ConfigMapRef.Name == settings.Name
	})
	if !uses {
		t.Errorf("router container does not read ConfigMap %s", settings.Name)
	}

	if got := settings.Data["K8S_NAMESPACE"]; got != watchedNamespace {
		t.Errorf("K8S_NAMESPACE = %q, expected %q", got, watchedNamespace)
	}
	if _, err := routing.NormalizeBaseDomain(settings.Data["K8S_BASE_DOMAIN"]); err != nil {
		t.Errorf("K8S_BASE_DOMAIN: %v", err)
	}
	if got := settings.Data["CADDY_SERVER_NAME"]; got != "srv0" {
		t.Errorf("CADDY_SERVER_NAME = %q, expected srv0", got)
	}
}

// containerPort resolves a named or numbered port of c.
func containerPort(t *testing.T, c corev1.Container, port intstr.IntOrString) int32 {
	t.Helper()

	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, port.StrVal)
	return 0
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()

	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
