package integration

import (
	"strings"
	"testing"

	"mediaslot/internal/testserver"
)

// A real client over its daily quota gets wait/resource-constraint with a
// text saying when it can upload again; other users are not affected.
func TestQuotaWithRealClient(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "[upload]\ndaily_quota = 300000\n")
	file, data := writeRandomFile(t, "first.bin", 200_000)
	checkSlixUpload(t, slixUpload(t, srv, "alice", srv.ComponentJID(), file), data, "application/octet-stream")
	res := slixTry(t, srv, "alice", srv.ComponentJID(), file)
	if res.Error == nil || !strings.Contains(*res.Error, "wait/resource-constraint") || !strings.Contains(*res.Error, "you can upload again after") {
		t.Fatalf("second upload over the quota: %v", res.Error)
	}
	checkSlixUpload(t, slixUpload(t, srv, "bob", srv.ComponentJID(), file), data, "application/octet-stream")
}
