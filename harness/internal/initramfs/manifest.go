package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"oomlab"
	"oomlab/harness/internal/protocol"
)

// ManifestPath is the guest image manifest inside oomlab.Assets.
const ManifestPath = "images/guest.yaml"

// Manifest is what goes into the guest image besides the run's files:
// images/guest.yaml. All paths are absolute guest paths.
type Manifest struct {
	Dirs      []string `yaml:"dirs"`
	Devices   []Device `yaml:"devices"`
	Init      Binary   `yaml:"init"`      // where the agent binary goes
	Stressors Binaries `yaml:"stressors"` // where the stressors go
	Links     []Link   `yaml:"links"`
}

// Device is a device node.
type Device struct {
	Path  string `yaml:"path"`
	Type  string `yaml:"type"` // char or block
	Major uint32 `yaml:"major"`
	Minor uint32 `yaml:"minor"`
	Mode  Mode   `yaml:"mode"`
}

// Binary places one host file.
type Binary struct {
	Path string `yaml:"path"`
	Mode Mode   `yaml:"mode"`
}

// Binaries places host files in a directory under their base names.
type Binaries struct {
	Dir  string `yaml:"dir"`
	Mode Mode   `yaml:"mode"`
}

// Link is a symbolic link.
type Link struct {
	Path   string `yaml:"path"`
	Target string `yaml:"target"`
}

// Mode is a permission mode written as an octal string ("0755").
type Mode uint32

// UnmarshalText reads "0755".
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(string(b), "0o"), 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("mode %q: want octal permission bits as a quoted string such as \"0755\"", b)
	}
	*m = Mode(v)
	return nil
}

// DefaultManifest reads the manifest embedded in the oomlab binary.
func DefaultManifest() (*Manifest, error) {
	return LoadManifest(oomlab.Assets, ManifestPath)
}

// LoadManifest reads and checks a manifest.
func LoadManifest(fsys fs.FS, name string) (*Manifest, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return ParseManifest(name, data)
}

// ParseManifest decodes and checks a manifest; name is for errors.
func ParseManifest(name string, data []byte) (*Manifest, error) {
	var m Manifest
	if err := yaml.UnmarshalWithOptions(data, &m, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// guestPath checks an absolute, clean guest path that is not the root.
func guestPath(what, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%s %q: want an absolute, clean path below /", what, p)
	}
	return nil
}

// Validate checks every entry, that no path is used twice, and that the
// agent can find itself: a link at protocol.AgentPath to the init binary.
func (m *Manifest) Validate() error {
	seen := map[string]string{}
	claim := func(what, p string) error {
		if err := guestPath(what, p); err != nil {
			return err
		}
		if prev, ok := seen[p]; ok {
			return fmt.Errorf("%s %q: already used by %s", what, p, prev)
		}
		seen[p] = what
		return nil
	}
	for _, d := range m.Dirs {
		if err := claim("dirs", d); err != nil {
			return err
		}
	}
	for i, d := range m.Devices {
		what := fmt.Sprintf("devices[%d]", i)
		if err := claim(what, d.Path); err != nil {
			return err
		}
		if d.Type != "char" && d.Type != "block" {
			return fmt.Errorf("%s %s: type %q: want char or block", what, d.Path, d.Type)
		}
		if d.Major == 0 {
			return fmt.Errorf("%s %s: major 0 is not a device", what, d.Path)
		}
		if d.Mode == 0 {
			return fmt.Errorf("%s %s: mode missing", what, d.Path)
		}
	}
	if err := claim("init", m.Init.Path); err != nil {
		return err
	}
	if m.Init.Mode&0o111 == 0 {
		return fmt.Errorf("init %s: mode %#o is not executable", m.Init.Path, m.Init.Mode)
	}
	if err := guestPath("stressors.dir", m.Stressors.Dir); err != nil {
		return err
	}
	if m.Stressors.Mode&0o111 == 0 {
		return fmt.Errorf("stressors %s: mode %#o is not executable", m.Stressors.Dir, m.Stressors.Mode)
	}
	agentLinked := false
	for i, l := range m.Links {
		what := fmt.Sprintf("links[%d]", i)
		if err := claim(what, l.Path); err != nil {
			return err
		}
		if l.Target == "" {
			return fmt.Errorf("%s %s: target missing", what, l.Path)
		}
		if l.Path == protocol.AgentPath {
			if l.Target != m.Init.Path {
				return fmt.Errorf("%s %s: points to %q, want the agent at %s", what, l.Path, l.Target, m.Init.Path)
			}
			agentLinked = true
		}
	}
	if !agentLinked {
		return errors.New("links: no link from " + protocol.AgentPath + " (protocol.AgentPath, where the agent finds itself) to the init binary")
	}
	return nil
}
