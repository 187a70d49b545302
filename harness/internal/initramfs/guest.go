package initramfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"oomlab/harness/internal/atomicfile"
	"oomlab/harness/internal/protocol"
)

// Guest is what one run puts into the image described by the manifest.
type Guest struct {
	Agent     string   // path of the static agent binary; becomes the manifest's init
	Stressors []string // static programs copied to the manifest's stressor directory
	// Config is written as JSON to protocol.ConfigPath, mode 0600. Without
	// PathDirs the agent looks commands up in the stressor directory.
	Config protocol.Config
}

// rel is a guest path as an archive entry name.
func rel(p string) string { return strings.TrimPrefix(p, "/") }

// Build assembles the guest archive from the embedded manifest
// (images/guest.yaml).
func Build(g Guest) (*Archive, error) {
	m, err := DefaultManifest()
	if err != nil {
		return nil, err
	}
	return m.Build(g)
}

// Build assembles the guest archive: the manifest's directories, device
// nodes, binaries and links, and the agent configuration.
func (m *Manifest) Build(g Guest) (*Archive, error) {
	a := New()
	for _, d := range m.Dirs {
		if err := a.AddDir(rel(d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range m.Devices {
		t := TypeChar
		if d.Type == "block" {
			t = TypeBlock
		}
		if err := a.Add(Entry{Name: rel(d.Path), Type: t, Perm: uint32(d.Mode), DevMajor: d.Major, DevMinor: d.Minor}); err != nil {
			return nil, err
		}
	}
	agent, err := os.ReadFile(g.Agent)
	if err != nil {
		return nil, fmt.Errorf("guest agent: %w (run 'make build')", err)
	}
	if err := a.AddFile(rel(m.Init.Path), uint32(m.Init.Mode), agent); err != nil {
		return nil, err
	}
	for _, l := range m.Links {
		if err := a.AddSymlink(rel(l.Path), l.Target); err != nil {
			return nil, err
		}
	}
	for _, s := range g.Stressors {
		data, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("stressor: %w (run 'make build')", err)
		}
		if err := a.AddFile(rel(path.Join(m.Stressors.Dir, filepath.Base(s))), uint32(m.Stressors.Mode), data); err != nil {
			return nil, err
		}
	}
	if len(g.Config.PathDirs) == 0 {
		g.Config.PathDirs = []string{m.Stressors.Dir}
	}
	cfg, err := json.Marshal(g.Config)
	if err != nil {
		return nil, err
	}
	if err := a.AddFile(rel(protocol.ConfigPath), 0o600, cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// WriteFile builds the guest archive from the embedded manifest and writes
// it to name (through a temporary file and a rename).
func WriteFile(name string, g Guest) error {
	a, err := Build(g)
	if err != nil {
		return err
	}
	data, err := a.Bytes()
	if err != nil {
		return err
	}
	return atomicfile.Write(name, data, 0o644)
}

// Bytes returns the archive as one byte slice.
func (a *Archive) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	_, err := a.WriteTo(&buf)
	return buf.Bytes(), err
}
