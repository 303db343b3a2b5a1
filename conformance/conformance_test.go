package conformance

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestEndsWithName(t *testing.T) {
	const name = "photo été 🎉.txt"
	for raw, want := range map[string]bool{
		"https://h/f/1/photo%20%C3%A9t%C3%A9%20%F0%9F%8E%89.txt":       true,
		"https://h/f/1/photo%20%C3%A9t%C3%A9%20%F0%9F%8E%89.txt?x=1":   true,
		"https://h/f/1/photo%2520%25C3%25A9t%25C3%25A9%2520%25F0.txt":  false, // escaped twice
		"https://h/f/1/other.txt":                                      false,
		"https://h/f/1/":                                               false,
		"https://h/f/1/photo%20%C3%A9t%C3%A9%20%F0%9F%8E%89.txt/extra": false,
	} {
		if got := endsWithName(raw, name); got != want {
			t.Errorf("endsWithName(%s) = %t, want %t", raw, got, want)
		}
	}
}

func TestChecksAreUnique(t *testing.T) {
	seen := make(map[string]bool)
	for _, c := range Checks() {
		if seen[c.ID] || (c.Level != MUST && c.Level != SHOULD) || c.Title == "" {
			t.Errorf("check %+v: duplicate or incomplete", c)
		}
		seen[c.ID] = true
	}
}

func TestReportOutput(t *testing.T) {
	r := Report{Service: "upload.example.net", Results: []Result{
		{Check: discoFeature, Status: Pass, Detail: "features: x"},
		{Check: slotHTTPS, Status: Fail, Detail: "plain\nhttp"},
		{Check: put201, Status: Fail},
		{Check: rangeCheck, Status: Skip, Detail: "no slot"},
	}}
	if r.Failed(MUST) != 1 || r.Failed(SHOULD) != 1 {
		t.Errorf("failed: %d MUST, %d SHOULD", r.Failed(MUST), r.Failed(SHOULD))
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fail    MUST    slot-https", "plain http", put201.Title, "1 MUST and 1 SHOULD failed"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != 4 || back.Results[1].ID != "slot-https" || back.Results[1].Level != MUST {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}
