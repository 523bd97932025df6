package manifests_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestNamespacesSetOnce renames both namespaces where the base's
// kustomization.yaml sets them and checks that every reference follows, in
// the base and in both overlays.
func TestNamespacesSetOnce(t *testing.T) {
	dir := checkout(t)
	kustomization := filepath.Join(dir, "manifests", "base", "kustomization.yaml")
	editFile(t, kustomization, "\nnamespace: caddy-router\n", "\nnamespace: edge\n")
	editFile(t, kustomization, "K8S_NAMESPACE=gitspaces", "K8S_NAMESPACE=workspaces")
	certgen(t, filepath.Join(dir, "certs"), "-namespace", "edge")

	for _, overlay := range []string{"manifests", "manifests/cert-manager", "certs"} {
		t.Run(overlay, func(t *testing.T) {
			objs := render(t, filepath.Join(dir, overlay))

			for _, obj := range objs {
				want := "edge"
				switch obj.GetKind() {
				case "Namespace", "MutatingWebhookConfiguration":
					want = ""
				case "Role", "RoleBinding":
					want = "workspaces"
				}
				if got := obj.GetNamespace(); got != want {
					t.Errorf("%s %s namespace = %q, expected %q", obj.GetKind(), obj.GetName(), got, want)
				}
			}
			objs.find(t, "Namespace", "edge")

			binding := convert[rbacv1.RoleBinding](t, objs.find(t, "RoleBinding", appName))
			if got := binding.Subjects[0].Namespace; got != "edge" {
				t.Errorf("RoleBinding subject namespace = %q, expected edge", got)
			}

			hook := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs.find(t, "MutatingWebhookConfiguration", appName)).Webhooks[0]
			if got := hook.ClientConfig.Service.Namespace; got != "edge" {
				t.Errorf("webhook service namespace = %q, expected edge", got)
			}
			expressions := hook.NamespaceSelector.MatchExpressions
			if got := expressions[0].Values; !slices.Equal(got, []string{"workspaces"}) {
				t.Errorf("namespaceSelector In values = %v, expected [workspaces]", got)
			}
			if got := expressions[1].Values; !slices.Equal(got, []string{"kube-system", "edge"}) {
				t.Errorf("namespaceSelector NotIn values = %v, expected [kube-system edge]", got)
			}

			if overlay == "manifests/cert-manager" {
				checkCertManagerNames(t, objs, "edge")
			}
		})
	}
}

// TestCertsOverlay runs certgen into a copy of certs/ and renders it. The
// overlay must carry the CA as the caBundle and the key pair as the Secret
// the router mounts, and the certificate must be valid for the name the API
// server calls.
func TestCertsOverlay(t *testing.T) {
	dir := checkout(t)
	certsDir := filepath.Join(dir, "certs")
	certgen(t, certsDir)
	objs := render(t, certsDir)

	// the caBundle is ca.crt
	hook := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs.find(t, "MutatingWebhookConfiguration", appName)).Webhooks[0]
	caPEM := readFile(t, filepath.Join(certsDir, "ca.crt"))
	if !bytes.Equal(hook.ClientConfig.CABundle, caPEM) {
		t.Error("webhook caBundle differs from certs/ca.crt")
	}

	// the Secret holds tls.crt and tls.key, in the router's namespace
	secret := convert[corev1.Secret](t, objs.find(t, "Secret", webhookSecret))
	if secret.Name != webhookSecret {
		t.Errorf("Secret name = %q, expected %q without a hash suffix, the name the Deployment mounts", secret.Name, webhookSecret)
	}
	if secret.Namespace != routerNamespace {
		t.Errorf("Secret namespace = %q, expected %q", secret.Namespace, routerNamespace)
	}
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type = %q, expected %q", secret.Type, corev1.SecretTypeTLS)
	}
	for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if !bytes.Equal(secret.Data[key], readFile(t, filepath.Join(certsDir, key))) {
			t.Errorf("Secret %s differs from certs/%s", key, key)
		}
	}
	checkSecretMounted(t, objs, secret.Name)

	// the serving certificate verifies for <service>.<namespace>.svc
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(hook.ClientConfig.CABundle) {
		t.Fatal("caBundle holds no PEM certificate")
	}
	serving, err := parseCertificate(secret.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	service := hook.ClientConfig.Service
	name := service.Name + "." + service.Namespace + ".svc"
	_, err = serving.Verify(x509.VerifyOptions{
		DNSName:     name,
		Roots:       roots,
		CurrentTime: time.Now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Errorf("serving certificate does not verify for %s: %v", name, err)
	}
}

func TestCertManagerOverlay(t *testing.T) {
	objs := render(t, filepath.Join(repoRoot(t), "manifests", "cert-manager"))

	checkCertManagerNames(t, objs, routerNamespace)

	issuer := objs.find(t, "Issuer", webhookService)
	if _, found, _ := unstructured.NestedMap(issuer.Object, "spec", "selfSigned"); !found {
		t.Error("Issuer is not selfSigned: the cainjector copies the Certificate's own CA, which only a self-signed certificate is")
	}

	hook := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs.find(t, "MutatingWebhookConfiguration", appName)).Webhooks[0]
	if len(hook.ClientConfig.CABundle) != 0 {
		t.Error("cert-manager overlay sets a caBundle, expected the cainjector to fill it in")
	}
	if secrets := objs.of("Secret"); len(secrets) != 0 {
		t.Errorf("cert-manager overlay renders %d Secrets, expected cert-manager to create the only one", len(secrets))
	}
}

// checkCertManagerNames checks that the Certificate, its Issuer and the
// inject-ca-from annotation agree with the webhook Service in namespace.
func checkCertManagerNames(t *testing.T, objs objects, namespace string) {
	t.Helper()

	cert := objs.find(t, "Certificate", webhookService)
	issuer := objs.find(t, "Issuer", webhookService)
	config := objs.find(t, "MutatingWebhookConfiguration", appName)

	if cert.GetNamespace() != namespace || issuer.GetNamespace() != namespace {
		t.Errorf("Certificate, Issuer namespaces = %q, %q, expected %q", cert.GetNamespace(), issuer.GetNamespace(), namespace)
	}

	wantAnnotation := namespace + "/" + cert.GetName()
	if got := config.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != wantAnnotation {
		t.Errorf("inject-ca-from = %q, expected %q", got, wantAnnotation)
	}

	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	wantName := webhookService + "." + namespace + ".svc"
	if !slices.Contains(dnsNames, wantName) {
		t.Errorf("Certificate dnsNames = %v, expected %s, the name the API server calls", dnsNames, wantName)
	}

	issuerName, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	if issuerName != issuer.GetName() {
		t.Errorf("Certificate issuerRef.name = %q, expected %q", issuerName, issuer.GetName())
	}

	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	checkSecretMounted(t, objs, secretName)
}

// checkSecretMounted checks that the router container mounts the Secret
// name at the webhook's default certificate folder.
func checkSecretMounted(t *testing.T, objs objects, name string) {
	t.Helper()

	pod := objs.deployment(t).Spec.Template.Spec
	router := container(t, pod, "router")

	index := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == name
	})
	if index < 0 {
		t.Fatalf("no volume for Secret %s", name)
	}
	mounted := slices.ContainsFunc(router.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == pod.Volumes[index].Name && m.MountPath == "/tmp/k8s-webhook-server/serving-certs"
	})
	if !mounted {
		t.Errorf("router does not mount Secret %s at /tmp/k8s-webhook-server/serving-certs, the default --webhook-cert-dir", name)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseCertificate(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// TestAllNamespacesComponent renders the base with the all-namespaces
// component and checks that RBAC and the webhook follow the wider scope.
func TestAllNamespacesComponent(t *testing.T) {
	objs := render(t, filepath.Join(repoRoot(t), "test", "manifests", "testdata", "all-namespaces"))

	if n := len(objs.of("Role")) + len(objs.of("RoleBinding")); n != 0 {
		t.Errorf("%d Roles and RoleBindings left, want none", n)
	}

	role := convert[rbacv1.ClusterRole](t, objs.find(t, "ClusterRole", "caddy-router"))
	base := convert[rbacv1.Role](t, render(t, filepath.Join(repoRoot(t), "manifests")).find(t, "Role", "caddy-router"))
	if !reflect.DeepEqual(role.Rules, base.Rules) {
		t.Errorf("ClusterRole rules = %+v, want the base Role's %+v", role.Rules, base.Rules)
	}

	binding := convert[rbacv1.ClusterRoleBinding](t, objs.find(t, "ClusterRoleBinding", "caddy-router"))
	if len(binding.Subjects) != 1 || binding.Subjects[0].Name != "caddy-router" || binding.Subjects[0].Namespace != "caddy-router" {
		t.Errorf("ClusterRoleBinding subjects = %+v, want the router's ServiceAccount", binding.Subjects)
	}

	settings := objs.of("ConfigMap")
	found := false
	for _, cm := range settings {
		if value, ok, _ := unstructured.NestedString(cm.Object, "data", "K8S_NAMESPACE"); ok {
			found = true
			if value != "*" {
				t.Errorf("K8S_NAMESPACE = %q, want *", value)
			}
		}
	}
	if !found {
		t.Error("no ConfigMap sets K8S_NAMESPACE")
	}

	webhook := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs.find(t, "MutatingWebhookConfiguration", "caddy-router"))
	for _, w := range webhook.Webhooks {
		exprs := w.NamespaceSelector.MatchExpressions
		if len(exprs) != 1 || exprs[0].Operator != metav1.LabelSelectorOpNotIn ||
			!reflect.DeepEqual(exprs[0].Values, []string{"kube-system", "caddy-router"}) {
			t.Errorf("webhook %s namespaceSelector = %+v, want only NotIn [kube-system caddy-router]", w.Name, exprs)
		}
	}
}
