package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	defaultrules "github.com/mciv/mciv/rules/default"
)

// LoadFiles loads and validates rules files. A path may name a file or a
// directory, whose *.yaml and *.yml files (not its subdirectories, nor
// hidden files) are loaded in name order. Every error of every file is
// reported, as Errors; the set is returned only when all files are valid,
// so that a reload applies all files or none.
func LoadFiles(paths ...string) (*Set, error) {
	return load(osSource{}, paths)
}

// LoadFS is LoadFiles on a file system, such as the embedded default rules
// (LoadFS(defaultrules.FS(), ".")). Paths are slash-separated fs paths.
func LoadFS(fsys fs.FS, paths ...string) (*Set, error) {
	return load(fsSource{fsys}, paths)
}

// LoadDefault loads the default rules embedded in the binary
// (rules/default/*.yaml).
func LoadDefault() (*Set, error) {
	set, err := LoadFS(defaultrules.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("default rules: %w", err)
	}
	return set, nil
}

// source is where rules files are read from.
type source interface {
	Stat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	ReadFile(name string) ([]byte, error)
	Join(dir, name string) string
}

type osSource struct{}

func (osSource) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }
func (osSource) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (osSource) ReadFile(name string) ([]byte, error)       { return os.ReadFile(name) }
func (osSource) Join(dir, name string) string               { return filepath.Join(dir, name) }

type fsSource struct{ fsys fs.FS }

func (s fsSource) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(s.fsys, name) }
func (s fsSource) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(s.fsys, name) }
func (s fsSource) ReadFile(name string) ([]byte, error)       { return fs.ReadFile(s.fsys, name) }
func (s fsSource) Join(dir, name string) string               { return path.Join(dir, name) }

func isRulesFile(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

// ioError describes a failure to read path without repeating the path.
func ioError(path string, err error) Error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
}

// ListFiles returns the rules files that LoadFiles(paths...) reads, in
// the order it reads them, and the errors of the paths it cannot read.
// A reloader hashes them to notice changes.
func ListFiles(paths ...string) ([]string, error) {
	files, errs := list(osSource{}, paths)
	if len(errs) > 0 {
		return files, errs
	}
	return files, nil
}

func list(src source, paths []string) ([]string, Errors) {
	var errs Errors
	if len(paths) == 0 {
		return nil, Errors{{Msg: "no rules files given"}}
	}
	var files []string
	for _, p := range paths {
		info, err := src.Stat(p)
		if err != nil {
			errs = append(errs, ioError(p, err))
			continue
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := src.ReadDir(p)
		if err != nil {
			errs = append(errs, ioError(p, err))
			continue
		}
		n := 0
		for _, e := range entries {
			if !e.IsDir() && isRulesFile(e.Name()) {
				files = append(files, src.Join(p, e.Name()))
				n++
			}
		}
		if n == 0 {
			errs = append(errs, Error{File: p, Msg: "directory holds no *.yaml or *.yml rules files"})
		}
	}
	return files, errs
}

func load(src source, paths []string) (*Set, error) {
	files, errs := list(src, paths)
	if len(paths) == 0 {
		return nil, errs
	}

	set := &Set{}
	seenFile := map[string]bool{}
	alerts := map[string]Pos{}
	for _, f := range files {
		if seenFile[f] {
			continue // named twice, e.g. as a file and through its directory
		}
		seenFile[f] = true
		data, err := src.ReadFile(f)
		if err != nil {
			errs = append(errs, ioError(f, err))
			continue
		}
		groups, err := Parse(f, data)
		if err != nil {
			var fe Errors
			if errors.As(err, &fe) {
				errs = append(errs, fe...)
			} else {
				errs = append(errs, Error{File: f, Msg: err.Error()})
			}
			continue
		}
		var dups Errors
		for _, g := range groups {
			for _, r := range g.Rules {
				if prev, dup := alerts[r.Alert]; dup {
					dups = append(dups, Error{File: f, Line: r.Pos.Line, Col: r.Pos.Col, Group: g.Name, Rule: r.Alert,
						Msg: fmt.Sprintf("alert %q already defined at %s", r.Alert, prev)})
					continue
				}
				alerts[r.Alert] = r.Pos
			}
		}
		errs = append(errs, dups...)
		set.Groups = append(set.Groups, groups...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}
