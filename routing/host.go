package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	placeholderName      = "{name}"
	placeholderNamespace = "{namespace}"

	// labelRule is the reason given when a value must be a DNS-1123 label.
	labelRule = "must be a DNS-1123 label (lower case letters, digits and '-', at most 63 characters, no dots)"
)

// HostError reports why a Deployment cannot be given a host. The object
// itself causes it, so retrying cannot fix it, and callers admit or skip the
// Deployment without a route. Match it with [errors.As].
type HostError struct {
	// Subject names what was checked, such as "deployment name" or "host".
	Subject string
	// Value is the checked value as supplied.
	Value string
	// Reason is the rule the value violates.
	Reason string
}

// Error returns the subject, the quoted value and the reason, and states
// that no route will be created.
func (e *HostError) Error() string {
	return fmt.Sprintf("%s %q cannot form a host: %s; no route will be created", e.Subject, e.Value, e.Reason)
}

// NormalizeBaseDomain returns s lower-cased and without one trailing dot, or
// an error if the result is empty, a wildcard, an IP address, not a DNS-1123
// subdomain, or has a label longer than 63 characters.
func NormalizeBaseDomain(s string) (string, error) {
	domain := strings.ToLower(s)
	domain = strings.TrimSuffix(domain, ".")

	if domain == "" {
		return "", fmt.Errorf("base domain %q is empty: expected a DNS name such as \"workspaces.example.test\"", s)
	}

	if strings.Contains(domain, "*") {
		return "", fmt.Errorf("base domain %q is a wildcard: expected a plain DNS name such as \"example.test\"; hosts are built as <name>.<base domain>", s)
	}

	// A numeric last label also catches IPv4 spellings that netip rejects,
	// such as "10.0.0.01" or "1.2.3", and is never a top-level domain.
	if _, err := netip.ParseAddr(domain); err == nil || isNumeric(domain[strings.LastIndexByte(domain, '.')+1:]) {
		return "", fmt.Errorf("base domain %q is an IP address or ends in a numeric label: expected a DNS name such as \"workspaces.example.test\"", s)
	}

	if errs := validation.IsDNS1123Subdomain(domain); len(errs) > 0 {
		return "", fmt.Errorf("base domain %q is invalid: expected a DNS-1123 subdomain (lower case letters, digits, '-' and '.', at most 253 characters): %s", s, strings.Join(errs, "; "))
	}

	for label := range strings.SplitSeq(domain, ".") {
		if len(label) > validation.DNS1123LabelMaxLength {
			return "", fmt.Errorf("base domain %q is invalid: label %q is longer than %d characters; expected labels of at most %d characters", s, label, validation.DNS1123LabelMaxLength, validation.DNS1123LabelMaxLength)
		}
	}

	return domain, nil
}

// Namer builds the host of each Deployment from a template and a base
// domain. A Namer is immutable and safe for concurrent use.
type Namer struct {
	baseDomain    string
	template      string
	usesNamespace bool
}

// NewNamer returns a Namer that builds hosts as the expanded template, a dot
// and the base domain. The base domain is normalized by
// [NormalizeBaseDomain]. The template may use the placeholders {name} (the
// Deployment name) and {namespace}, and must contain {name} so that no two
// Deployments share a host. Literal text in the template must keep the host
// a DNS name. NewNamer returns an error naming the value and the fix for a
// bad base domain or template.
func NewNamer(baseDomain, template string) (*Namer, error) {
	domain, err := NormalizeBaseDomain(baseDomain)
	if err != nil {
		return nil, err
	}

	if err := validateTemplate(template); err != nil {
		return nil, err
	}

	// The shortest host comes from one-letter values. If even that host is
	// invalid, no Deployment could ever get one.
	shortest := expand(template, "a", "a") + "." + domain
	var hostErr *HostError
	if err := checkHost(shortest); errors.As(err, &hostErr) {
		return nil, fmt.Errorf("host template %q with base domain %q cannot form any host: the shortest host %q %s; shorten the template or the base domain", template, domain, shortest, hostErr.Reason)
	}

	return &Namer{
		baseDomain:    domain,
		template:      template,
		usesNamespace: strings.Contains(template, placeholderNamespace),
	}, nil
}

// BaseDomain returns the normalized base domain.
func (n *Namer) BaseDomain() string {
	return n.baseDomain
}

// Template returns the host template.
func (n *Namer) Template() string {
	return n.template
}

// Host returns the host of the Deployment namespace/name. The name must be a
// DNS-1123 label, and so must the namespace when the template uses it. Every
// label of the host must be at most 63 characters and the whole host at most
// 253. Any violation is returned as a [*HostError].
func (n *Namer) Host(namespace, name string) (string, error) {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", &HostError{Subject: "deployment name", Value: name, Reason: labelRule}
	}

	if n.usesNamespace {
		if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
			return "", &HostError{Subject: "namespace", Value: namespace, Reason: labelRule}
		}
	}

	host := expand(n.template, namespace, name) + "." + n.baseDomain
	if err := checkHost(host); err != nil {
		return "", err
	}

	return host, nil
}

// checkHost returns a [*HostError] if host is not a DNS-1123 subdomain with
// labels of at most 63 characters and a length of at most 253.
func checkHost(host string) error {
	if len(host) > validation.DNS1123SubdomainMaxLength {
		reason := fmt.Sprintf("is %d characters long, more than the maximum of %d", len(host), validation.DNS1123SubdomainMaxLength)
		return &HostError{Subject: "host", Value: host, Reason: reason}
	}

	for label := range strings.SplitSeq(host, ".") {
		if len(label) > validation.DNS1123LabelMaxLength {
			reason := fmt.Sprintf("label %q is longer than %d characters", label, validation.DNS1123LabelMaxLength)
			return &HostError{Subject: "host", Value: host, Reason: reason}
		}
	}

	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return &HostError{Subject: "host", Value: host, Reason: strings.Join(errs, "; ")}
	}

	return nil
}

// validateTemplate returns an error if template lacks {name}, has an unknown
// or unclosed placeholder, or has literal text that cannot be part of a DNS
// name.
func validateTemplate(template string) error {
	if !strings.Contains(template, placeholderName) {
		return fmt.Errorf("host template %q must contain %s, for example %q", template, placeholderName, DefaultHostTemplate)
	}

	rest := template
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			break
		}
		if rest[open] == '}' {
			return fmt.Errorf("host template %q has a '}' without a matching '{': use only %s and %s", template, placeholderName, placeholderNamespace)
		}

		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return fmt.Errorf("host template %q has an unclosed '{': use only %s and %s", template, placeholderName, placeholderNamespace)
		}

		placeholder := rest[open : open+end+1]
		if placeholder != placeholderName && placeholder != placeholderNamespace {
			return fmt.Errorf("host template %q has unknown placeholder %s: use only %s and %s", template, placeholder, placeholderName, placeholderNamespace)
		}
		rest = rest[open+end+1:]
	}

	// Expanding with one-letter values checks the literal text: every
	// character and every dot must be valid in a DNS name.
	sample := expand(template, "a", "a")
	if errs := validation.IsDNS1123Subdomain(sample); len(errs) > 0 {
		return fmt.Errorf("host template %q expands to %q, which is not a DNS-1123 subdomain: use lower case letters, digits, '-' and '.' around the placeholders", template, sample)
	}

	return nil
}

// expand replaces the placeholders of template with namespace and name in
// one pass, so a value that looks like a placeholder is not expanded again.
func expand(template, namespace, name string) string {
	var builder strings.Builder
	builder.Grow(len(template) + len(namespace) + len(name))

	rest := template
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			builder.WriteString(rest)
			return builder.String()
		}
		builder.WriteString(rest[:open])
		rest = rest[open:]

		switch {
		case strings.HasPrefix(rest, placeholderName):
			builder.WriteString(name)
			rest = rest[len(placeholderName):]
		case strings.HasPrefix(rest, placeholderNamespace):
			builder.WriteString(namespace)
			rest = rest[len(placeholderNamespace):]
		default:
			builder.WriteByte('{')
			rest = rest[1:]
		}
	}
}
