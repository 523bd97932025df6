package watch

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// byDeploymentIndex indexes pods by the key ("namespace/name") of the
// Deployment that owns them through a ReplicaSet.
const byDeploymentIndex = "byDeployment"

// trimObject is the informers' transform. It keeps only the fields the
// router reads, so that the caches of large clusters stay small. Tombstones
// and other types pass unchanged.
func trimObject(obj any) (any, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return trimDeployment(o), nil
	case *corev1.Pod:
		return trimPod(o), nil
	default:
		return obj, nil
	}
}

// trimDeployment keeps the identity, the router's annotations, the selector
// and the container ports of the pod template.
func trimDeployment(d *appsv1.Deployment) *appsv1.Deployment {
	out := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:              d.Name,
			Namespace:         d.Namespace,
			UID:               d.UID,
			ResourceVersion:   d.ResourceVersion,
			Generation:        d.Generation,
			CreationTimestamp: d.CreationTimestamp,
			DeletionTimestamp: d.DeletionTimestamp,
		},
		Spec: appsv1.DeploymentSpec{Selector: d.Spec.Selector},
	}

	for _, key := range []string{routing.AnnotationRouteURL, routing.AnnotationPort} {
		if value, ok := d.Annotations[key]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[key] = value
		}
	}

	out.Spec.Template.Spec.Containers = containerPorts(d.Spec.Template.Spec.Containers)

	return out
}

// containerPorts keeps each container's name and ports, which a named port
// annotation is resolved against.
func containerPorts(containers []corev1.Container) []corev1.Container {
	out := make([]corev1.Container, len(containers))
	for i, c := range containers {
		out[i] = corev1.Container{Name: c.Name, Ports: c.Ports}
	}

	return out
}

// trimPod keeps the identity, labels, the controlling owner, and the status
// fields that decide whether and where the pod is an upstream.
func trimPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              p.Name,
			Namespace:         p.Namespace,
			UID:               p.UID,
			ResourceVersion:   p.ResourceVersion,
			Labels:            p.Labels,
			DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{HostNetwork: p.Spec.HostNetwork, Containers: containerPorts(p.Spec.Containers)},
		Status: corev1.PodStatus{
			Phase:  p.Status.Phase,
			PodIP:  p.Status.PodIP,
			PodIPs: p.Status.PodIPs,
		},
	}

	if owner := metav1.GetControllerOfNoCopy(p); owner != nil {
		out.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}

	return out
}

// deploymentKeyOfPod returns the key of the Deployment that owns pod, or
// false if a ReplicaSet of a Deployment does not control it. The Deployment
// controller names each ReplicaSet "<deployment>-<pod-template-hash>" and
// labels its pods with that hash, so the Deployment's name is found without
// watching ReplicaSets.
func deploymentKeyOfPod(pod *corev1.Pod) (string, bool) {
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil || owner.Kind != "ReplicaSet" {
		return "", false
	}

	hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if hash == "" {
		return "", false
	}
	name, ok := strings.CutSuffix(owner.Name, "-"+hash)
	if !ok || name == "" {
		return "", false
	}

	return pod.Namespace + "/" + name, true
}

// indexByDeployment is the pod indexer for byDeploymentIndex.
func indexByDeployment(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	if key, ok := deploymentKeyOfPod(pod); ok {
		return []string{key}, nil
	}

	return nil, nil
}

// objectFromTombstone returns the object a delete handler received, unwrapping
// a DeletedFinalStateUnknown. It returns nil for a tombstone holding nil.
func objectFromTombstone(obj any) any {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return tombstone.Obj
	}

	return obj
}
