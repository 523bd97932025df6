// Command certgen writes the admission webhook's TLS material for clusters
// without cert-manager: a CA, a serving certificate for the webhook Service's
// DNS names signed by that CA, and a kustomize patch that puts the CA into the
// MutatingWebhookConfiguration's caBundle.
//
// Files written to the output folder (default certs/):
//
//	ca.crt                  the CA certificate, PEM
//	ca.key                  the CA private key, PEM, mode 0600
//	tls.crt                 the serving certificate, PEM
//	tls.key                 the serving private key, PEM, mode 0600
//	webhook-ca-bundle.yaml  the caBundle patch
//
// An existing ca.crt and ca.key pair is reused, so running certgen again
// renews the serving certificate without changing the caBundle. Delete both
// files to start a new CA.
//
// Usage:
//
//	go run ./hack/certgen [-out certs] [-namespace caddy-router] [-service caddy-router-webhook]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// options are the command-line settings of one run.
type options struct {
	outDir        string
	service       string
	namespace     string
	clusterDomain string
	configName    string
	webhookName   string
	extraDNS      stringList
	extraIPs      ipList
	caValidity    time.Duration
	validity      time.Duration
}

func main() {
	if err := run(os.Args[1:], os.Stdout, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}

// run parses args, writes the files and prints one line per file to out.
func run(args []string, out io.Writer, now time.Time) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}

	// Reuse the CA when both of its files exist, otherwise create one.
	ca, created, err := loadOrCreateCA(opts.outDir, opts.caValidity, now)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "certgen: created CA %s, valid until %s\n", ca.certPath, ca.cert.NotAfter.Format(time.DateOnly))
	} else {
		fmt.Fprintf(out, "certgen: reused CA %s, valid until %s\n", ca.certPath, ca.cert.NotAfter.Format(time.DateOnly))
	}

	// Issue the serving certificate for the Service's DNS names.
	dnsNames := append(serviceDNSNames(opts.service, opts.namespace, opts.clusterDomain), opts.extraDNS...)
	serving, err := issueServingCert(ca, dnsNames, opts.extraIPs, opts.validity, now)
	if err != nil {
		return err
	}

	servingPaths, err := writeKeyPair(opts.outDir, "tls", serving)
	if err != nil {
		return err
	}
	names := slices.Clone(dnsNames)
	for _, ip := range opts.extraIPs {
		names = append(names, ip.String())
	}
	fmt.Fprintf(out, "certgen: wrote %s for %s, valid until %s\n", servingPaths, strings.Join(names, ", "), serving.cert.NotAfter.Format(time.DateOnly))

	// Write the kustomize patch carrying the caBundle.
	patchPath, err := writeCABundlePatch(opts.outDir, opts.configName, opts.webhookName, ca.certPEM)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "certgen: wrote %s\n", patchPath)

	return nil
}

// parseFlags returns the options in args or an error naming the bad value.
func parseFlags(args []string) (options, error) {
	var opts options

	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	fs.StringVar(&opts.outDir, "out", "certs", "folder to write the CA, the serving key pair and the caBundle patch to")
	fs.StringVar(&opts.service, "service", "caddy-router-webhook", "name of the webhook Service")
	fs.StringVar(&opts.namespace, "namespace", "caddy-router", "namespace of the webhook Service (the router's namespace)")
	fs.StringVar(&opts.clusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain, for the <service>.<namespace>.svc.<cluster domain> name")
	fs.StringVar(&opts.configName, "webhook-configuration", "caddy-router", "name of the MutatingWebhookConfiguration the patch targets")
	fs.StringVar(&opts.webhookName, "webhook", "route-url.caddy-k8s-router.github.io", "name of the webhook entry in that configuration")
	fs.Var(&opts.extraDNS, "dns", "additional DNS name for the serving certificate; repeatable")
	fs.Var(&opts.extraIPs, "ip", "additional IP address for the serving certificate, such as 127.0.0.1 for a webhook reached by URL; repeatable")
	fs.DurationVar(&opts.caValidity, "ca-validity", 10*365*24*time.Hour, "lifetime of a newly created CA")
	fs.DurationVar(&opts.validity, "validity", 365*24*time.Hour, "lifetime of the serving certificate; it must end before the CA expires")

	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q: certgen takes flags only, see -h", fs.Arg(0))
	}

	if err := opts.validate(); err != nil {
		return options{}, err
	}

	return opts, nil
}

// validate returns an error naming the first invalid option and its fix.
func (o options) validate() error {
	if o.outDir == "" {
		return errors.New("-out is empty: name the folder to write the certificates to")
	}

	for flagName, value := range map[string]string{"-service": o.service, "-namespace": o.namespace} {
		if errs := validation.IsDNS1123Label(value); len(errs) > 0 {
			return fmt.Errorf("%s %q is invalid: expected a DNS-1123 label (lower case letters, digits and '-', at most 63 characters): %s", flagName, value, strings.Join(errs, "; "))
		}
	}

	if o.validity <= 0 {
		return fmt.Errorf("-validity %s is invalid: expected a positive duration such as 8760h", o.validity)
	}
	if o.caValidity < o.validity {
		return fmt.Errorf("-ca-validity %s is shorter than -validity %s: the CA must outlive the serving certificate", o.caValidity, o.validity)
	}

	return nil
}

// serviceDNSNames returns the names a client may use for the Service; the
// API server uses <service>.<namespace>.svc.
func serviceDNSNames(service, namespace, clusterDomain string) []string {
	names := []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
	}
	if clusterDomain != "" {
		names = append(names, service+"."+namespace+".svc."+clusterDomain)
	}
	return names
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if s == "" {
		return errors.New("empty DNS name")
	}
	*l = append(*l, s)
	return nil
}

// ipList is a repeatable IP address flag.
type ipList []net.IP

func (l *ipList) String() string {
	parts := make([]string, 0, len(*l))
	for _, ip := range *l {
		parts = append(parts, ip.String())
	}
	return strings.Join(parts, ",")
}

func (l *ipList) Set(s string) error {
	ip := net.ParseIP(s)
	if ip == nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	*l = append(*l, ip)
	return nil
}
