//go:build !unix

package testserver

// lockFile does not lock outside Unix: concurrent test binaries may then
// build a tool twice, and the rename into place keeps the result whole.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
