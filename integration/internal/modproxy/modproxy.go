// Package modproxy writes modules of this repository into a directory laid out as a Go module
// proxy (the GOPROXY protocol, as `go mod download` caches it), so that a module outside the
// repository can fetch them with GOPROXY=file://<dir>: it then gets what a user gets from a
// release, with no go.work and no replace directive of ours.
package modproxy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// Module is one module to serve: Dir holds its go.mod, whose module line must name Path.
type Module struct {
	Path    string
	Version string
	Dir     string
}

// Write adds every module to the proxy rooted at root: <path>/@v/<version>.info, .mod and .zip,
// and the version in <path>/@v/list. The zip is made as the go command makes it from a VCS
// checkout, from Dir's files as they are on disk (nested modules, vendor and .git left out).
func Write(root string, mods ...Module) error {
	for _, m := range mods {
		if err := write(root, m); err != nil {
			return fmt.Errorf("modproxy: %s@%s: %w", m.Path, m.Version, err)
		}
	}
	return nil
}

func write(root string, m Module) error {
	gomod, err := os.ReadFile(filepath.Join(m.Dir, "go.mod"))
	if err != nil {
		return err
	}
	if p := modfile.ModulePath(gomod); p != m.Path {
		return fmt.Errorf("%s/go.mod declares module %q", m.Dir, p)
	}
	mv := module.Version{Path: m.Path, Version: m.Version}
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	escPath, err := module.EscapePath(m.Path)
	if err != nil {
		return err
	}
	escVer, err := module.EscapeVersion(m.Version)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, filepath.FromSlash(escPath), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, escVer)

	z, err := os.Create(base + ".zip")
	if err != nil {
		return err
	}
	if err := modzip.CreateFromDir(z, mv, m.Dir); err != nil {
		z.Close()
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	// The .mod must be the zip's go.mod: go.sum records both, and a user's build checks them.
	if err := os.WriteFile(base+".mod", gomod, 0o644); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{m.Version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".info", info, 0o644); err != nil {
		return err
	}
	list, err := os.OpenFile(filepath.Join(dir, "list"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(list, m.Version); err != nil {
		list.Close()
		return err
	}
	return list.Close()
}

// Required returns the version of path that the go.mod in dir requires, or an error when it
// requires none.
func Required(dir, path string) (string, error) {
	name := filepath.Join(dir, "go.mod")
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax(name, b, nil)
	if err != nil {
		return "", err
	}
	for _, r := range f.Require {
		if r.Mod.Path == path {
			return r.Mod.Version, nil
		}
	}
	return "", fmt.Errorf("modproxy: %s requires no %s", name, path)
}
