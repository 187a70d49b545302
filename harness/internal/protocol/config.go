package protocol

import (
	"encoding/json"
	"fmt"
	"os"
)

// ConfigPath is where the initramfs carries the agent configuration.
const ConfigPath = "/etc/oomlab/agent.json"

// Config is the agent configuration. The host writes it as JSON to
// ConfigPath in the image; the agent reads it at boot.
type Config struct {
	ListenAddr     string            `json:"listen_addr"`     // ":22" (TCP) or "vport:<name>" (a virtio-serial port)
	HostKeyPEM     string            `json:"host_key_pem"`    // OpenSSH private key PEM
	AuthorizedKeys string            `json:"authorized_keys"` // authorized_keys format, one or more
	IPCIDR         string            `json:"ip_cidr"`         // "10.0.2.15/24"; empty = leave eth0 alone
	Gateway        string            `json:"gateway"`
	Sysctls        map[string]string `json:"sysctls"`   // "kernel.sched_rt_runtime_us": "-1" -> /proc/sys/kernel/sched_rt_runtime_us
	PathDirs       []string          `json:"path_dirs"` // where commands are looked up, default ["/bin"]
}

// DefaultListenAddr is used when Config.ListenAddr is empty.
const DefaultListenAddr = ":22"

// VportPrefix starts a ListenAddr that names a virtio-serial port (QEMU's
// virtserialport name=) instead of a TCP address: the SSH stream then runs
// over the port, which the host reaches as a UNIX socket of QEMU's.
const VportPrefix = "vport:"

// WithDefaults returns a copy of c with empty fields filled in.
func (c Config) WithDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if len(c.PathDirs) == 0 {
		c.PathDirs = []string{"/bin"}
	}
	return c
}

// Marshal encodes c as the agent reads it.
func (c Config) Marshal() ([]byte, error) { return json.Marshal(c) }

// LoadConfig reads and decodes a JSON config file and applies defaults.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return c.WithDefaults(), nil
}
