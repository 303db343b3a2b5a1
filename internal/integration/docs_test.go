package integration

import (
	"os"
	"strings"
	"testing"

	"mediaslot/internal/testserver"
)

// The README's Prosody snippet is the one the integration tests run with.
func TestReadmeSnippetIsTested(t *testing.T) {
	readme, err := os.ReadFile(testserver.ModuleRoot(t) + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(testserver.Testdata(t, "prosody", "prosody.cfg.lua"))
	if err != nil {
		t.Fatal(err)
	}
	between := func(s, begin, end string) string {
		_, rest, ok := strings.Cut(s, begin)
		if !ok {
			t.Fatalf("marker %q missing", begin)
		}
		body, _, ok := strings.Cut(rest, end)
		if !ok {
			t.Fatalf("marker %q missing", end)
		}
		return strings.TrimSpace(body)
	}
	want := between(string(cfg), "-- BEGIN attach snippet (README.md shows these lines; a test keeps them equal)\n", "-- END attach snippet")
	got := between(string(readme), "<!-- BEGIN attach snippet -->\n```lua\n", "```\n<!-- END attach snippet -->")
	if got != want {
		t.Fatalf("README snippet differs from testdata/prosody/prosody.cfg.lua:\n--- README\n%s\n--- config\n%s", got, want)
	}
}
