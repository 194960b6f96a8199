// Package defaultrules embeds the rules SREs start from: the files of
// rules/default/*.yaml, loaded with rules.LoadFS(defaultrules.FS(), ".").
package defaultrules

import (
	"embed"
	"io/fs"
)

//go:embed *.yaml
var files embed.FS

// FS returns the default rules files (read-only), at the root of the
// file system.
func FS() fs.FS { return files }
