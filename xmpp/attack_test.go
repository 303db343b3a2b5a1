package xmpp

import (
	"fmt"
	"strings"
	"testing"

	"mediaslot/upload"
)

// The slot rate and the quota are per account: requests from many
// resources of one account, or with its name in other letter cases, or
// from the denied user in other cases, share one bucket and one quota.
func TestSlotLimitsPerAccount(t *testing.T) {
	svc := realSlotsWith(t, func(p *upload.Policy) {
		p.SlotRate, p.SlotBurst = 0.001, 3
		p.Quota.DailyBytes = 1 << 20
	})
	req := func(from string, i int) string {
		return fmt.Sprintf(`<iq type='get' id='r%d' from='%s' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'/></iq>`, i, from)
	}
	granted := 0
	for i, from := range []string{"alice@example.net/a", "alice@example.net/b", "ALICE@example.net/c", "Alice@EXAMPLE.NET/d", "alice@example.net/e", "alice@Example.Net"} {
		got := roundTrip(t, svc, req(from, i))
		switch {
		case strings.Contains(got, `type="result"`):
			granted++
		case !strings.Contains(got, "<resource-constraint "):
			t.Fatalf("%s: %s", from, got)
		}
	}
	if granted != 3 {
		t.Errorf("%d slots granted to one account under a burst of 3", granted)
	}
	for _, from := range []string{"MALLORY@example.net/x", "mallory@EXAMPLE.net"} {
		if got := roundTrip(t, svc, req(from, 0)); !strings.Contains(got, "<forbidden ") {
			t.Errorf("%s: %s", from, got)
		}
	}
}

// Odd but valid slot requests are granted as the XEP's types read them;
// odd invalid ones are refused as bad requests.
func TestSlotRequestEdges(t *testing.T) {
	svc := realSlots(t)
	req := func(attrs, inner string) string {
		return `<iq type='get' id='x' ` + from + `><request xmlns='urn:xmpp:http:upload:0' ` + attrs + `>` + inner + `</request></iq>`
	}
	for _, c := range []struct{ name, in, want string }{
		{"plus sign size (xs:integer)", req(`filename='a.txt' size='+5'`, ""), "result"},
		{"leading zeros", req(`filename='a.txt' size='0005'`, ""), "result"},
		{"minus zero", req(`filename='a.txt' size='-0'`, ""), "bad-request"},
		{"below int64", req(`filename='a.txt' size='-99999999999999999999999'`, ""), "bad-request"},
		{"255 bytes of 2-byte letters", req(`filename='`+strings.Repeat("é", 127)+`a' size='5'`, ""), "result"},
		{"256 bytes of 2-byte letters", req(`filename='`+strings.Repeat("é", 128)+`' size='5'`, ""), "bad-request"},
		{"reserved Windows name", req(`filename='CON' size='5'`, ""), "result"},
		{"trailing dots and spaces", req(`filename='a.txt. . ' size='5'`, ""), "result"},
		{"percent and query", req(`filename='%2e%2e?x=1#y' size='5'`, ""), "%252e%252e%3Fx=1%23y"},
		{"CRLF in a content-type parameter", req(`filename='a.txt' size='5' content-type='text/plain; a="x&#13;&#10;Set-Cookie: y"'`, ""), "bad-request"},
		{"CRLF after the content-type", req(`filename='a.txt' size='5' content-type='text/plain&#13;&#10;Set-Cookie: y'`, ""), "bad-request"},
		{"content-type in capitals with parameters", req(`filename='a.txt' size='5' content-type='TEXT/Plain ; Charset=UTF-8'`, ""), "result"},
		{"expire-before in year 9999", req(`filename='a.txt' size='5'`, `<ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='9999-12-31T23:59:59Z'/>`), "result"},
		{"expire-before with an offset", req(`filename='a.txt' size='5'`, `<ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='2999-01-01T00:00:00+14:00'/>`), "result"},
		{"purpose of another namespace ignored", req(`filename='a.txt' size='5'`, `<permanent xmlns='urn:example'/><permanent xmlns='urn:example'/>`), "result"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := roundTrip(t, svc, c.in); !strings.Contains(got, c.want) {
				t.Fatalf("want %s, got %s", c.want, got)
			}
		})
	}
}
