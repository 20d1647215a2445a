package consul

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/consul/api"
)

// liveTLSConfig returns the TLS configuration for an agent, with the CA
// file and the client certificate and key read again whenever they change:
// each new connection verifies the agent against the CA file as it is then,
// and presents the certificate as it is then. Connections already open go
// on as they were verified. failed hears of a changed file that does not
// load (the previous one stays in use). host is the agent's host, which
// its certificate must name unless conf names another. forget makes the
// next connection read the files whatever their state.
func liveTLSConfig(conf *api.TLSConfig, host string, failed func(error)) (c *tls.Config, forget func(), err error) {
	c, err = api.SetupTLSConfig(conf)
	if err != nil {
		return nil, nil, err
	}
	var forgets []func()
	forget = func() {
		for _, f := range forgets {
			f()
		}
	}
	if conf.CertFile != "" && conf.KeyFile != "" {
		cert := newLiveFiles(func() (*tls.Certificate, error) {
			kp, err := tls.LoadX509KeyPair(conf.CertFile, conf.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("load the client certificate %s and key %s: %w", conf.CertFile, conf.KeyFile, err)
			}
			return &kp, nil
		}, failed, conf.CertFile, conf.KeyFile)
		if _, err := cert.get(); err != nil {
			return nil, nil, err
		}
		forgets = append(forgets, cert.forget)
		c.Certificates = nil
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.get() }
	}
	if conf.CAFile != "" && conf.CAPath == "" && len(conf.CAPem) == 0 && !conf.InsecureSkipVerify {
		roots := newLiveFiles(func() (*x509.CertPool, error) { return loadCAFile(conf.CAFile) }, failed, conf.CAFile)
		if _, err := roots.get(); err != nil {
			return nil, nil, err
		}
		forgets = append(forgets, roots.forget)
		// Go verifies against a fixed pool; this verifies as Go does, with
		// the pool the CA file holds now.
		name := c.ServerName
		if name == "" {
			name = host
		}
		c.RootCAs = nil
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			pool, err := roots.get()
			if err != nil {
				return err
			}
			return verifyPeer(cs.PeerCertificates, pool, name)
		}
	}
	return c, forget, nil
}

// loadCAFile reads a PEM bundle of CA certificates.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// verifyPeer verifies the agent's certificate chain against roots and the
// name it must carry (a DNS name or an IP address), as crypto/tls does by
// default.
func verifyPeer(chain []*x509.Certificate, roots *x509.CertPool, name string) error {
	if len(chain) == 0 {
		return errors.New("the agent presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, cert := range chain[1:] {
		opts.Intermediates.AddCert(cert)
	}
	_, err := chain[0].Verify(opts)
	return err
}
