// Package conformance checks any XEP-0363 HTTP File Upload service from the
// outside, as a logged-in client: discovery, slots, the HTTP side of
// uploads and downloads, and the error conditions. Each check has the
// level of the requirement it tests (MUST or SHOULD, from XEP-0363, RFC
// 6120, XEP-0128 or what deployed clients depend on) and says why it
// failed. The sources are the checklists of ejabberd's and MongooseIM's
// upload test suites and the client behaviour in the project's protocol
// notes.
package conformance

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Level is how strong the tested requirement is.
type Level string

// Levels.
const (
	MUST   Level = "MUST"
	SHOULD Level = "SHOULD"
)

// Status is the outcome of one check.
type Status string

// Outcomes. A check is skipped when what it needs (a slot, an advertised
// limit) is missing; the failure is reported where that is checked.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check is one requirement of the suite.
type Check struct {
	ID    string `json:"id"`
	Level Level  `json:"level"`
	Title string `json:"title"`
}

// Result is a check's outcome.
type Result struct {
	Check
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome of a run against one service.
type Report struct {
	Service string   `json:"service"`
	Results []Result `json:"results"`
}

// Failed counts the failed checks of a level.
func (r Report) Failed(l Level) int {
	n := 0
	for _, res := range r.Results {
		if res.Level == l && res.Status == Fail {
			n++
		}
	}
	return n
}

// WriteTable prints the results as an aligned table and a summary line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RESULT\tLEVEL\tCHECK\tDETAIL\n")
	for _, res := range r.Results {
		detail := res.Detail
		if detail == "" {
			detail = res.Title
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.Status, res.Level, res.ID, oneLine(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s: %d checks, %d MUST and %d SHOULD failed\n",
		r.Service, len(r.Results), r.Failed(MUST), r.Failed(SHOULD))
	return err
}

// WriteJSON prints the report as one JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
