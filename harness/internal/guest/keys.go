// Package guest is the host side of the oomlab guest agent: key material
// for one run and an SSH client that runs commands in the guest, with typed
// calls for what the runner asks of every guest (kernel log markers, the
// process census, metrics, power-off). What goes over the wire is defined
// by package protocol; the host never links the agent itself.
package guest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"

	"oomlab/harness/internal/protocol"
)

// Keys is the key material of one run: the guest's host key and the host's
// client key. Generated fresh per run, so no known_hosts handling is
// needed and a stale guest from another run is rejected.
type Keys struct {
	HostKeyPEM       string        // guest host private key (OpenSSH PEM) -> protocol.Config.HostKeyPEM
	HostPublic       ssh.PublicKey // what Dial accepts, exactly
	Client           ssh.Signer    // host's client key
	ClientAuthorized string        // authorized_keys line -> protocol.Config.AuthorizedKeys
}

// NewKeys generates fresh ed25519 key pairs for the guest host key and the
// client.
func NewKeys() (*Keys, error) {
	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(hostPriv, "oomlab guest")
	if err != nil {
		return nil, fmt.Errorf("marshal host key: %w", err)
	}
	hostPublic, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		return nil, err
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	client, err := ssh.NewSignerFromKey(clientPriv)
	if err != nil {
		return nil, err
	}
	return &Keys{
		HostKeyPEM:       string(pem.EncodeToMemory(block)),
		HostPublic:       hostPublic,
		Client:           client,
		ClientAuthorized: string(ssh.MarshalAuthorizedKey(client.PublicKey())),
	}, nil
}

// Apply fills the key fields of an agent config.
func (k *Keys) Apply(cfg *protocol.Config) {
	cfg.HostKeyPEM = k.HostKeyPEM
	cfg.AuthorizedKeys = k.ClientAuthorized
}
