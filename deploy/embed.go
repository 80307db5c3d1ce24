// Package deploy holds vecnet's deployment files. Its Go side builds the
// CRDs into binaries that install them themselves, like vecnet-lab, so
// that they work from any directory. It lives here rather than in
// deploy/crds, which holds exactly what hack/gencrd.sh generates (its
// --verify compares the whole directory).
package deploy

import (
	"embed"
	"io/fs"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs is the CustomResourceDefinitions of deploy/crds (the
// projectcalico.org/v3 API), as a file system of YAML files at its root.
var CRDs = func() fs.FS {
	sub, err := fs.Sub(crdFiles, "crds")
	if err != nil {
		panic(err) // "crds" is a valid path: cannot happen
	}
	return sub
}()
