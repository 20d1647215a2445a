package testconsul

import (
	"testing"

	"github.com/hashicorp/consul/sdk/testutil"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testcerts"
)

// TLSFiles are PEM files made by NewTLS.
type TLSFiles = testcerts.Files

// NewTLS makes a CA, and a server and a client certificate signed by it, in
// a temporary directory.
func NewTLS(t testing.TB) TLSFiles {
	t.Helper()
	f, err := testcerts.Write(t.TempDir())
	require.NoError(t, err, "make certificates")
	return f
}

// WithHTTPS makes the agent serve HTTPS too, with the files' certificate.
func WithHTTPS(f TLSFiles) func(*testutil.TestServerConfig) {
	return func(c *testutil.TestServerConfig) {
		c.CAFile, c.CertFile, c.KeyFile = f.CA, f.ServerCert, f.ServerKey
	}
}

// WithVerifiedClients makes the agent's HTTPS port require a client
// certificate signed by the files' CA.
func WithVerifiedClients() func(*testutil.TestServerConfig) {
	return func(c *testutil.TestServerConfig) {
		c.VerifyIncomingHTTPS = true
	}
}
