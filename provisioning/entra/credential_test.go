package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// selfSigned writes a PEM file with a certificate and its key.
func selfSigned(t *testing.T, dir, name string) (*x509.Certificate, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

// Certificate credential: azidentity signs a client assertion (PS256,
// x5t#S256) that the simulator verifies against the registered certificate.
func TestCertificateCredential(t *testing.T) {
	dir := t.TempDir()
	registered, goodPath := selfSigned(t, dir, "registered")
	_, otherPath := selfSigned(t, dir, "other")
	cases := []struct {
		name string
		path string
		ok   bool
	}{
		{"registered certificate", goodPath, true},
		{"unregistered certificate", otherPath, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, d, _ := newSimDirectory(t, entratest.Options{ClientCertificate: registered}, func(c *Config) {
				c.ClientSecret = ""
				c.CertificatePath = tc.path
			})
			err := d.Check(ctxT(t))
			if tc.ok && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !tc.ok {
				var de *provisioning.DirectoryError
				if !errors.As(err, &de) || de.Kind != provisioning.KindForbidden || !strings.Contains(err.Error(), "AADSTS700027") {
					t.Fatalf("want forbidden AADSTS700027, got %v", err)
				}
			}
		})
	}
}

func TestPasswordIsStrongAndRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		p, err := newPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) < 16 || len(p) > 256 {
			t.Fatalf("length %d", len(p))
		}
		classes := 0
		for _, set := range []string{pwLower, pwUpper, pwDigits, pwSymbols} {
			if strings.ContainsAny(p, set) {
				classes++
			}
		}
		if classes < 3 {
			t.Fatalf("password %q has %d character classes, Entra needs 3", p, classes)
		}
		for _, r := range p {
			if r > 127 {
				t.Fatalf("non-ASCII character in %q", p)
			}
		}
		if seen[p] {
			t.Fatalf("password repeated after %d draws", len(seen))
		}
		seen[p] = true
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"0.250", 250 * time.Millisecond, true},
		{"Fri, 27 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"soon", 0, false},
		{"-3", 0, false},
	}
	for _, tc := range cases {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEscapeOData(t *testing.T) {
	cases := map[string]string{"plain": "plain", "o'brien": "o''brien", "''": "''''", "a' or '1'='1": "a'' or ''1''=''1"}
	for in, want := range cases {
		if got := escapeOData(in); got != want {
			t.Errorf("escapeOData(%q) = %q, want %q", in, got, want)
		}
	}
}
