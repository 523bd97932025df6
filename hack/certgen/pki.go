package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"

	// clockSkew backdates NotBefore so that a client whose clock runs a
	// little behind still accepts a certificate issued a moment ago.
	clockSkew = time.Hour
)

// keyPair is a certificate, its private key and their PEM encodings.
type keyPair struct {
	cert     *x509.Certificate
	key      crypto.Signer
	certPEM  []byte
	keyPEM   []byte
	certPath string
}

// loadOrCreateCA returns the CA stored in dir as ca.crt and ca.key, or
// creates, writes and returns a new one when neither file exists. created
// reports which happened. Only one of the two files, a key that does not
// match the certificate, a certificate that is not a CA, or an expired CA is
// an error that names the file and the fix.
func loadOrCreateCA(dir string, validity time.Duration, now time.Time) (ca *keyPair, created bool, err error) {
	certPath := filepath.Join(dir, caCertFile)
	keyPath := filepath.Join(dir, caKeyFile)

	certExists, err := fileExists(certPath)
	if err != nil {
		return nil, false, err
	}
	keyExists, err := fileExists(keyPath)
	if err != nil {
		return nil, false, err
	}

	switch {
	case certExists && keyExists:
		ca, err := loadCA(certPath, keyPath, now)
		return ca, false, err
	case certExists:
		return nil, false, fmt.Errorf("found %s but not %s: restore the key, or delete %s to create a new CA (the caBundle changes)", certPath, keyPath, certPath)
	case keyExists:
		return nil, false, fmt.Errorf("found %s but not %s: restore the certificate, or delete %s to create a new CA (the caBundle changes)", keyPath, certPath, keyPath)
	}

	ca, err = createCA(validity, now)
	if err != nil {
		return nil, false, err
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("creating output folder %s: %w", dir, err)
	}
	if _, err := writeKeyPair(dir, "ca", ca); err != nil {
		return nil, false, err
	}
	ca.certPath = certPath

	return ca, true, nil
}

// createCA returns a new self-signed CA with an ECDSA P-256 key.
func createCA(validity time.Duration, now time.Time) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}

	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}

	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "caddy-k8s-router webhook CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}

	return sign(template, template, &key.PublicKey, key, key)
}

// issueServingCert returns a serving certificate for dnsNames and ips,
// signed by ca, with a new ECDSA P-256 key. It returns an error when the CA
// expires before the certificate would.
func issueServingCert(ca *keyPair, dnsNames []string, ips []net.IP, validity time.Duration, now time.Time) (*keyPair, error) {
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		return nil, fmt.Errorf("CA %s expires on %s, before the serving certificate would (%s): shorten -validity, or delete %s and %s to create a new CA",
			ca.certPath, ca.cert.NotAfter.Format(time.DateOnly), notAfter.Format(time.DateOnly), caCertFile, caKeyFile)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the serving key: %w", err)
	}

	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}

	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}

	return sign(template, ca.cert, &key.PublicKey, key, ca.key)
}

// sign creates the certificate for template, signed by parent's key, and
// returns it with key.
func sign(template, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer, parentKey crypto.Signer) (*keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, template, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate for %q: %w", template.Subject.CommonName, err)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate for %q: %w", template.Subject.CommonName, err)
	}

	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the key for %q: %w", template.Subject.CommonName, err)
	}

	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// loadCA reads and checks the CA in certPath and keyPath.
func loadCA(certPath, keyPath string, now time.Time) (*keyPair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading the CA key: %w", err)
	}

	// Parse both files.
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}

	// Check that they form a usable CA.
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %s is not a CA certificate: delete %s and %s to create a new CA", certPath, caCertFile, caKeyFile)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("CA key %s does not match %s: restore the matching pair, or delete both to create a new CA", keyPath, certPath)
	}
	if !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("CA certificate %s expired on %s: delete %s and %s to create a new CA", certPath, cert.NotAfter.Format(time.DateOnly), caCertFile, caKeyFile)
	}

	return &keyPair{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM, certPath: certPath}, nil
}

// parseCertPEM returns the first CERTIFICATE block in data.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKeyPEM returns the private key in the first PEM block of data, in
// PKCS #8, SEC 1 (EC) or PKCS #1 (RSA) form.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}

	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q: expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, err
	}

	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign certificates", key)
	}
	return signer, nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	key, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && key.Equal(b)
}

// randomSerial returns a random 128-bit serial number.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return serial, nil
}

// writeKeyPair writes kp as <base>.crt (mode 0644) and <base>.key (mode
// 0600) in dir and returns the two paths for printing.
func writeKeyPair(dir, base string, kp *keyPair) (string, error) {
	certPath := filepath.Join(dir, base+".crt")
	keyPath := filepath.Join(dir, base+".key")

	if err := writeFileAtomic(keyPath, kp.keyPEM, 0o600); err != nil {
		return "", err
	}
	if err := writeFileAtomic(certPath, kp.certPEM, 0o644); err != nil {
		return "", err
	}

	return certPath + " and " + keyPath, nil
}

// writeFileAtomic replaces path with data and mode by renaming a temporary
// file, so a reader never sees half a key and an old file's mode is not kept.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())

	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}

	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// fileExists reports whether path exists; errors other than "not found"
// are returned.
func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("checking %s: %w", path, err)
}
