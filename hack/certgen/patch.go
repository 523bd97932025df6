package main

import (
	"fmt"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// patchFile is the name of the caBundle patch in the output folder. The
// kustomization in certs/ lists it under patches.
const patchFile = "webhook-ca-bundle.yaml"

// patchHeader is written above the patch to tell a reader of certs/ which
// command wrote it.
const patchHeader = `# Written by hack/certgen (make certs): sets the caBundle of the router's
# admission webhook to the CA in ca.crt. Run make certs again to renew.
`

// webhookConfigurationPatch is the strategic-merge patch that kustomize
// applies to the MutatingWebhookConfiguration. Webhook entries merge by name.
type webhookConfigurationPatch struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   patchMetadata  `json:"metadata"`
	Webhooks   []webhookPatch `json:"webhooks"`
}

type patchMetadata struct {
	Name string `json:"name"`
}

type webhookPatch struct {
	Name         string            `json:"name"`
	ClientConfig clientConfigPatch `json:"clientConfig"`
}

type clientConfigPatch struct {
	// CABundle is PEM; JSON encodes []byte as base64, the form the API
	// expects.
	CABundle []byte `json:"caBundle"`
}

// writeCABundlePatch writes the patch that sets the caBundle of webhook
// webhookName in configuration configName to caPEM, and returns its path.
func writeCABundlePatch(dir, configName, webhookName string, caPEM []byte) (string, error) {
	patch := webhookConfigurationPatch{
		APIVersion: "admissionregistration.k8s.io/v1",
		Kind:       "MutatingWebhookConfiguration",
		Metadata:   patchMetadata{Name: configName},
		Webhooks: []webhookPatch{{
			Name:         webhookName,
			ClientConfig: clientConfigPatch{CABundle: caPEM},
		}},
	}

	data, err := yaml.Marshal(patch)
	if err != nil {
		return "", fmt.Errorf("encoding the caBundle patch: %w", err)
	}

	path := filepath.Join(dir, patchFile)
	if err := writeFileAtomic(path, append([]byte(patchHeader), data...), 0o644); err != nil {
		return "", err
	}
	return path, nil
}
