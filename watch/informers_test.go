package watch

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// managedFields is a managedFields entry as the API server writes it.
var managedFields = []metav1.ManagedFieldsEntry{{
	Manager:    "kubectl",
	Operation:  metav1.ManagedFieldsOperationApply,
	APIVersion: "apps/v1",
	FieldsType: "FieldsV1",
	FieldsV1:   &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)},
}}

// fullDeployment returns a Deployment with every field trimDeployment
// should keep and several it should drop.
func fullDeployment() *appsv1.Deployment {
	d := newDeployment("web", map[string]string{
		routing.AnnotationPort:                             testPortName,
		routing.AnnotationRouteURL:                         "web.example.test",
		"team.example.test/owner":                          "a",
		"kubectl.kubernetes.io/last-applied-configuration": `{"big":"json"}`,
	})
	d.ResourceVersion = "42"
	d.Generation = 3
	d.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d.Labels = map[string]string{"app": "web"}
	d.ManagedFields = managedFields
	d.Spec.Replicas = new(int32(2))
	d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", Value: "secret"}}
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{
		Name:  "sidecar",
		Image: "registry.example.test/sidecar:1",
		Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}},
	})
	d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "registry.example.test/init:1"}}
	d.Status.ReadyReplicas = 2

	return d
}

func TestTrimDeployment(t *testing.T) {
	d := fullDeployment()

	got := trimDeployment(d)

	if got.Name != "web" || got.Namespace != testNamespace || got.UID != d.UID {
		t.Errorf("identity = %s/%s %s, want %s/%s %s", got.Namespace, got.Name, got.UID, d.Namespace, d.Name, d.UID)
	}
	if got.ResourceVersion != "42" {
		t.Errorf("resourceVersion = %q, want %q", got.ResourceVersion, "42")
	}
	if !got.CreationTimestamp.Equal(&d.CreationTimestamp) {
		t.Errorf("creationTimestamp = %v, want %v", got.CreationTimestamp, d.CreationTimestamp)
	}
	if got.ManagedFields != nil {
		t.Errorf("managedFields = %v, want none", got.ManagedFields)
	}
	wantAnnotations := map[string]string{routing.AnnotationPort: testPortName, routing.AnnotationRouteURL: "web.example.test"}
	if !reflect.DeepEqual(got.Annotations, wantAnnotations) {
		t.Errorf("annotations = %v, want %v", got.Annotations, wantAnnotations)
	}
	if got.Labels != nil {
		t.Errorf("labels = %v, want none", got.Labels)
	}
	if !reflect.DeepEqual(got.Spec.Selector, d.Spec.Selector) {
		t.Errorf("selector = %v, want %v", got.Spec.Selector, d.Spec.Selector)
	}
	if got.Spec.Replicas != nil {
		t.Errorf("replicas = %d, want unset", *got.Spec.Replicas)
	}
	wantContainers := []corev1.Container{
		{Name: "workspace", Ports: d.Spec.Template.Spec.Containers[0].Ports},
		{Name: "sidecar", Ports: d.Spec.Template.Spec.Containers[1].Ports},
	}
	if !reflect.DeepEqual(got.Spec.Template.Spec.Containers, wantContainers) {
		t.Errorf("containers = %+v, want only names and ports %+v", got.Spec.Template.Spec.Containers, wantContainers)
	}
	if got.Spec.Template.Spec.InitContainers != nil {
		t.Errorf("init containers = %+v, want none", got.Spec.Template.Spec.InitContainers)
	}
	if got.Status.ReadyReplicas != 0 {
		t.Errorf("status = %+v, want empty", got.Status)
	}
}

func TestTrimDeploymentKeepsPortResolution(t *testing.T) {
	d := fullDeployment()
	in := newRouteInput(t, d, newPod("web", "web-1", "10.0.0.1"))
	want, err := desiredRoute(in)
	if err != nil {
		t.Fatalf("desiredRoute(full) error = %v", err)
	}

	in.deployment = trimDeployment(d)
	got, err := desiredRoute(in)
	if err != nil {
		t.Fatalf("desiredRoute(trimmed) error = %v", err)
	}

	if !reflect.DeepEqual(got, want) {
		t.Errorf("desiredRoute(trimmed) = %+v, want %+v", got, want)
	}
}

func TestTrimDeploymentWithoutRouterAnnotations(t *testing.T) {
	d := newDeployment("web", map[string]string{"team.example.test/owner": "a"})

	got := trimDeployment(d)

	if got.Annotations != nil {
		t.Errorf("annotations = %v, want none", got.Annotations)
	}
}

// fullPod returns a pod with every field trimPod should keep and several it
// should drop.
func fullPod() *corev1.Pod {
	deleted := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

	pod := newPod("web", "web-1", "10.0.0.1", "fd00::1")
	pod.ResourceVersion = "7"
	pod.DeletionTimestamp = &deleted
	pod.ManagedFields = managedFields
	pod.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "now"}
	pod.OwnerReferences = append(pod.OwnerReferences, metav1.OwnerReference{
		APIVersion: "v1", Kind: "ConfigMap", Name: "not-the-controller", UID: "uid-cm",
	})
	pod.Spec.HostNetwork = true
	pod.Spec.NodeName = "node-1"
	pod.Spec.Containers = []corev1.Container{{
		Name:  "workspace",
		Image: "registry.example.test/workspace:1",
		Env:   []corev1.EnvVar{{Name: "TOKEN", Value: "secret"}},
		Ports: []corev1.ContainerPort{{Name: testPortName, ContainerPort: testPortNumber}},
	}}
	pod.Status.HostIP = "192.168.1.10"
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, Reason: "Ready", LastTransitionTime: deleted},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "workspace", Ready: true, RestartCount: 3}}

	return pod
}

func TestTrimPod(t *testing.T) {
	pod := fullPod()

	got := trimPod(pod)

	if got.Name != "web-1" || got.Namespace != testNamespace || got.UID != pod.UID {
		t.Errorf("identity = %s/%s %s, want %s/%s %s", got.Namespace, got.Name, got.UID, pod.Namespace, pod.Name, pod.UID)
	}
	if got.ResourceVersion != "7" {
		t.Errorf("resourceVersion = %q, want %q", got.ResourceVersion, "7")
	}
	if !reflect.DeepEqual(got.Labels, pod.Labels) {
		t.Errorf("labels = %v, want %v", got.Labels, pod.Labels)
	}
	if got.DeletionTimestamp == nil || !got.DeletionTimestamp.Equal(pod.DeletionTimestamp) {
		t.Errorf("deletionTimestamp = %v, want %v", got.DeletionTimestamp, pod.DeletionTimestamp)
	}
	if got.ManagedFields != nil {
		t.Errorf("managedFields = %v, want none", got.ManagedFields)
	}
	if got.Annotations != nil {
		t.Errorf("annotations = %v, want none", got.Annotations)
	}
	if want := pod.OwnerReferences[:1]; !reflect.DeepEqual(got.OwnerReferences, want) {
		t.Errorf("ownerReferences = %+v, want only the controller %+v", got.OwnerReferences, want)
	}
	if !got.Spec.HostNetwork {
		t.Error("hostNetwork = false, want true")
	}
	wantContainers := []corev1.Container{{Name: "workspace", Ports: pod.Spec.Containers[0].Ports}}
	if !reflect.DeepEqual(got.Spec.Containers, wantContainers) {
		t.Errorf("containers = %+v, want only names and ports %+v", got.Spec.Containers, wantContainers)
	}
	if got.Spec.NodeName != "" {
		t.Errorf("nodeName = %q, want empty", got.Spec.NodeName)
	}
	if got.Status.Phase != corev1.PodRunning {
		t.Errorf("phase = %q, want %q", got.Status.Phase, corev1.PodRunning)
	}
	if got.Status.PodIP != "10.0.0.1" {
		t.Errorf("podIP = %q, want %q", got.Status.PodIP, "10.0.0.1")
	}
	if !reflect.DeepEqual(got.Status.PodIPs, pod.Status.PodIPs) {
		t.Errorf("podIPs = %v, want %v", got.Status.PodIPs, pod.Status.PodIPs)
	}
	wantConditions := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if !reflect.DeepEqual(got.Status.Conditions, wantConditions) {
		t.Errorf("conditions = %+v, want only Ready %+v", got.Status.Conditions, wantConditions)
	}
	if got.Status.ContainerStatuses != nil {
		t.Errorf("containerStatuses = %+v, want none", got.Status.ContainerStatuses)
	}
}

func TestTrimPodKeepsUpstream(t *testing.T) {
	for _, family := range []corev1.IPFamily{"", corev1.IPv4Protocol, corev1.IPv6Protocol} {
		t.Run(string(family), func(t *testing.T) {
			pod := fullPod()
			pod.DeletionTimestamp = nil
			trimmed := trimPod(pod)

			wantIP, wantReason := upstreamIP(pod, family)
			gotIP, gotReason := upstreamIP(trimmed, family)

			if gotIP != wantIP || gotReason != wantReason {
				t.Errorf("upstreamIP(trimmed) = %q, %q, want %q, %q", gotIP, gotReason, wantIP, wantReason)
			}
			if key, _ := deploymentKeyOfPod(trimmed); key != "ns/web" {
				t.Errorf("deploymentKeyOfPod(trimmed) = %q, want %q", key, "ns/web")
			}
		})
	}
}

func TestTrimPodNotReady(t *testing.T) {
	pod := withPod(newPod("web", "web-1", "10.0.0.1"), func(p *corev1.Pod) { setReady(p, corev1.ConditionFalse) })

	got := trimPod(pod)

	if isPodReady(got) {
		t.Error("trimmed pod is Ready, want not Ready")
	}
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Status != corev1.ConditionFalse {
		t.Errorf("conditions = %+v, want Ready=False", got.Status.Conditions)
	}
}

func TestTrimObject(t *testing.T) {
	tombstone := cache.DeletedFinalStateUnknown{Key: "ns/web-1", Obj: fullPod()}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Annotations: map[string]string{"a": "b"}}}

	tests := []struct {
		name string
		in   any
		want any
	}{
		{name: "deployment", in: fullDeployment(), want: trimDeployment(fullDeployment())},
		{name: "pod", in: fullPod(), want: trimPod(fullPod())},
		{name: "tombstone", in: tombstone, want: tombstone},
		{name: "other type", in: other, want: other},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := trimObject(tt.in)
			if err != nil {
				t.Fatalf("trimObject() error = %v", err)
			}

			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("trimObject() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDeploymentKeyOfPod(t *testing.T) {
	tests := []struct {
		name   string
		pod    *corev1.Pod
		want   string
		wantOK bool
	}{
		{
			name:   "replicaset owner",
			pod:    newPod("web", "web-1", "10.0.0.1"),
			want:   "ns/web",
			wantOK: true,
		},
		{
			name:   "name with dashes",
			pod:    newPod("my-web-app", "my-web-app-1", "10.0.0.1"),
			want:   "ns/my-web-app",
			wantOK: true,
		},
		{
			name: "no owner",
			pod:  withPod(newPod("web", "web-1"), func(p *corev1.Pod) { p.OwnerReferences = nil }),
		},
		{
			name: "owner not controller",
			pod:  withPod(newPod("web", "web-1"), func(p *corev1.Pod) { p.OwnerReferences[0].Controller = nil }),
		},
		{
			name: "statefulset owner",
			pod: withPod(newPod("web", "web-1"), func(p *corev1.Pod) {
				p.OwnerReferences[0].Kind = "StatefulSet"
				p.OwnerReferences[0].Name = "web"
			}),
		},
		{
			name: "hash label missing",
			pod:  withPod(newPod("web", "web-1"), func(p *corev1.Pod) { delete(p.Labels, appsv1.DefaultDeploymentUniqueLabelKey) }),
		},
		{
			name: "hash not a suffix",
			pod: withPod(newPod("web", "web-1"), func(p *corev1.Pod) {
				p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "0000000000"
			}),
		},
		{
			name: "hash without dash",
			pod: withPod(newPod("web", "web-1"), func(p *corev1.Pod) {
				p.OwnerReferences[0].Name = "web" + testHash
			}),
		},
		{
			name: "replicaset named only the hash",
			pod: withPod(newPod("web", "web-1"), func(p *corev1.Pod) {
				p.OwnerReferences[0].Name = "-" + testHash
			}),
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := deploymentKeyOfPod(tt.pod)

			if ok != tt.wantOK {
				t.Errorf("ok = %t, want %t", ok, tt.wantOK)
			}
			if got != tt.want {
				t.Errorf("key = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIndexByDeployment(t *testing.T) {
	tests := []struct {
		name string
		obj  any
		want []string
	}{
		{name: "owned pod", obj: newPod("web", "web-1"), want: []string{"ns/web"}},
		{name: "pod without owner", obj: withPod(newPod("web", "web-1"), func(p *corev1.Pod) { p.OwnerReferences = nil })},
		{name: "other type", obj: newDeployment("web", nil)},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := indexByDeployment(tt.obj)
			if err != nil {
				t.Fatalf("indexByDeployment() error = %v", err)
			}

			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("indexByDeployment() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestObjectFromTombstone(t *testing.T) {
	pod := newPod("web", "web-1")
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}

	tests := []struct {
		name string
		in   any
		want any
	}{
		{name: "pod", in: pod, want: pod},
		{name: "tombstone with pod", in: cache.DeletedFinalStateUnknown{Key: "ns/web-1", Obj: pod}, want: pod},
		{name: "tombstone with nil", in: cache.DeletedFinalStateUnknown{Key: "ns/web-1"}, want: nil},
		{name: "tombstone with other type", in: cache.DeletedFinalStateUnknown{Key: "ns/cm", Obj: other}, want: other},
		{name: "nil", in: nil, want: nil},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := objectFromTombstone(tt.in)

			if got != tt.want {
				t.Errorf("objectFromTombstone() = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// newIdleController returns a Controller over testNamespace that is never
// run, so that its event handlers can be called directly and its queue
// read.
func newIdleController(t *testing.T) *Controller {
	t.Helper()

	c, err := New(fake.NewClientset(), &fakeWriter{}, Options{
		Namespaces: []string{testNamespace},
		Namer:      newTestNamer(t),
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	t.Cleanup(func() {
		c.workqueue.ShutDown()
		c.broadcaster.Shutdown()
	})

	return c
}

func TestDeleteHandlersTombstones(t *testing.T) {
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: testNamespace}}

	tests := []struct {
		name    string
		handler func(c *Controller, obj any)
		obj     any
		wantKey string
	}{
		{name: "deployment tombstone with nil", handler: (*Controller).onDeployment, obj: cache.DeletedFinalStateUnknown{Key: "ns/web"}},
		{name: "deployment tombstone with other type", handler: (*Controller).onDeployment, obj: cache.DeletedFinalStateUnknown{Key: "ns/cm", Obj: other}},
		{name: "deployment nil", handler: (*Controller).onDeployment, obj: nil},
		{name: "deployment tombstone with deployment", handler: (*Controller).onDeployment, obj: cache.DeletedFinalStateUnknown{Key: "ns/web", Obj: newDeployment("web", nil)}, wantKey: "ns/web"},
		{name: "pod tombstone with nil", handler: (*Controller).onPodDelete, obj: cache.DeletedFinalStateUnknown{Key: "ns/web-1"}},
		{name: "pod tombstone with other type", handler: (*Controller).onPodDelete, obj: cache.DeletedFinalStateUnknown{Key: "ns/cm", Obj: other}},
		{name: "pod nil", handler: (*Controller).onPodDelete, obj: nil},
		{name: "pod tombstone with pod", handler: (*Controller).onPodDelete, obj: cache.DeletedFinalStateUnknown{Key: "ns/web-1", Obj: newPod("web", "web-1")}, wantKey: "ns/web"},
		{name: "pod without owner", handler: (*Controller).onPodDelete, obj: withPod(newPod("web", "web-1"), func(p *corev1.Pod) { p.OwnerReferences = nil })},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newIdleController(t)

			tt.handler(c, tt.obj)

			if tt.wantKey == "" {
				if n := c.workqueue.Len(); n != 0 {
					t.Errorf("queue length = %d, want 0", n)
				}
				return
			}
			if n := c.workqueue.Len(); n != 1 {
				t.Fatalf("queue length = %d, want 1", n)
			}
			if key, _ := c.workqueue.Get(); key != tt.wantKey {
				t.Errorf("queued key = %q, want %q", key, tt.wantKey)
			}
		})
	}
}

func TestUpdateHandlersSkipResync(t *testing.T) {
	d := newDeployment("web", nil)
	d.ResourceVersion = "5"
	pod := newPod("web", "web-1", "10.0.0.1")
	pod.ResourceVersion = "5"
	c := newIdleController(t)

	c.onDeploymentUpdate(d, d.DeepCopy())
	c.onPodUpdate(pod, pod.DeepCopy())

	if n := c.workqueue.Len(); n != 0 {
		t.Errorf("queue length after resyncs = %d, want 0", n)
	}

	changed := pod.DeepCopy()
	changed.ResourceVersion = "6"
	c.onPodUpdate(pod, changed)

	if n := c.workqueue.Len(); n != 1 {
		t.Errorf("queue length after a pod update = %d, want 1", n)
	}
}
