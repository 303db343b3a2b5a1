package upload

import (
	"errors"
	"io/fs"
	"os"
)

// storeFault reports whether a failed store write failed on mediaslot's
// side (the file system: read-only, permissions, I/O errors) rather than on
// the client's (a body that ended early, a connection that broke). Errors
// reading the body come from the network (*net.OpError, io.ErrUnexpectedEOF,
// ...), never as path or link errors.
func storeFault(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	return errors.As(err, &pe) || errors.As(err, &le)
}
