package testbed

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Deployment returns a workspace-like Deployment named name with replicas
// pods, labelled app=<name>, whose one container declares port under the
// name "http". The kubelet stand-in serves each pod's name on that port.
func Deployment(name string, replicas, port int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}

	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "workspace",
					Image: "example.invalid/workspace:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}},
				}}},
			},
		},
	}
}
