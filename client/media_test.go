package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n got:\n%s\nwant:\n%s", p, got, want)
	}
}

func indented(t *testing.T, v any) []byte {
	t.Helper()
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func sampleMedia() Media {
	sum := sha256.Sum256([]byte("not really a photo"))
	return Media{
		URL:       "https://up.example.net/file/0123456789abcdef/photo%20%C3%A9t%C3%A9.png",
		Name:      "photo été.png",
		MediaType: "image/png",
		Size:      48213,
		SHA256:    sum[:],
		Width:     640,
		Height:    480,
		Thumbnail: &Thumbnail{Data: []byte("\x89PNG fake thumbnail bytes"), MediaType: "image/png", Width: 96, Height: 72},
	}
}

func TestMediaMessageGolden(t *testing.T) {
	bob := jid.MustParse("bob@example.net")
	golden(t, "direct.xml", indented(t, mediaMessage("m1", bob, nil, sampleMedia())))

	relay := jid.MustParse("upload.example.net")
	carol := jid.MustParse("carol@example.org")
	golden(t, "relay.xml", indented(t, mediaMessage("m2", relay, []jid.JID{bob, carol}, sampleMedia())))

	doc := Media{URL: "https://up.example.net/file/0123/report.pdf", Name: "report.pdf", MediaType: "application/pdf", Size: 0}
	golden(t, "attachment.xml", indented(t, mediaMessage("m3", bob, nil, doc)))

	enc := sampleMedia()
	enc.Encrypted = true
	enc.URL = "aesgcm://up.example.net/file/0123/a1b2.png#cafebabefacedbaddecaf888feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
	golden(t, "encrypted.xml", indented(t, mediaMessage("m4", bob, nil, enc)))
}

// What the sender builds, the receiver reads back: metadata and one file.
func TestMediaMessageRoundTrip(t *testing.T) {
	m := sampleMedia()
	b, err := xml.Marshal(mediaMessage("m1", jid.MustParse("bob@example.net"), nil, m))
	if err != nil {
		t.Fatal(err)
	}
	var in messageIn
	if err := xml.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	got := in.message()
	if len(got.Files) != 1 {
		t.Fatalf("files %+v, want one (SFS source and OOB URL are the same file)", got.Files)
	}
	f := got.Files[0]
	if f.URL != m.URL || f.Name != m.Name || f.MediaType != m.MediaType || f.Size != m.Size || !bytes.Equal(f.SHA256, m.SHA256) || f.Width != m.Width || f.Height != m.Height {
		t.Errorf("parsed %+v from %+v", f, m)
	}
	if th := f.Thumbnail; th == nil || !bytes.Equal(th.Data, m.Thumbnail.Data) || th.MediaType != "image/png" || th.Width != 96 || th.Height != 72 {
		t.Errorf("thumbnail %+v, want %+v", th, m.Thumbnail)
	}
}

func TestParseIncoming(t *testing.T) {
	for _, c := range []struct {
		name, xml string
		urls      []string
		via       string
	}{
		{"oob only", `<message from='a@x/r'><body>look</body><x xmlns='jabber:x:oob'><url>https://h/f.jpg</url></x></message>`, []string{"https://h/f.jpg"}, ""},
		{"body url", `<message from='a@x/r'><body> https://h/f.jpg </body></message>`, []string{"https://h/f.jpg"}, ""},
		{"aesgcm body with thumbnail line", "<message from='a@x/r'><body>aesgcm://h/f.jpg#00\ndata:image/jpeg;base64,AAAA</body></message>", []string{"aesgcm://h/f.jpg#00"}, ""},
		{"text with url", `<message from='a@x/r'><body>see https://h/f.jpg</body></message>`, nil, ""},
		{"two urls", "<message from='a@x/r'><body>https://h/a\nhttps://h/b</body></message>", nil, ""},
		{"javascript oob", `<message from='a@x/r'><x xmlns='jabber:x:oob'><url>javascript:alert(1)</url></x></message>`, nil, ""},
		{"no url", `<message from='example.net'><privilege xmlns='urn:xmpp:privilege:2'/></message>`, nil, ""},
		{"relayed", `<message from='upload.x'><body>https://h/f</body><addresses xmlns='http://jabber.org/protocol/address'><address type='ofrom' jid='alice@x'/></addresses></message>`, []string{"https://h/f"}, "alice@x"},
		{"sfs and other oob", `<message from='a@x/r'><file-sharing xmlns='urn:xmpp:sfs:0'><file xmlns='urn:xmpp:file:metadata:0'><name>a</name></file><sources><url-data xmlns='http://jabber.org/protocol/url-data' target='https://h/a'/></sources></file-sharing><x xmlns='jabber:x:oob'><url>https://h/b</url></x></message>`, []string{"https://h/a", "https://h/b"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var in messageIn
			if err := xml.Unmarshal([]byte(c.xml), &in); err != nil {
				t.Fatal(err)
			}
			m := in.message()
			var urls []string
			for _, f := range m.Files {
				urls = append(urls, f.URL)
				if f.Size != -1 && f.Name == "" {
					t.Errorf("size %d without metadata", f.Size)
				}
			}
			if len(urls) != len(c.urls) || (len(urls) > 0 && urls[0] != c.urls[0]) || (len(urls) > 1 && urls[1] != c.urls[1]) {
				t.Errorf("files %v, want %v", urls, c.urls)
			}
			if m.Via != c.via {
				t.Errorf("via %q, want %q", m.Via, c.via)
			}
		})
	}
}

// DelayFrom names who kept a message while the recipient was offline:
// the server's offline storage or the relay (bench tells them apart by it).
func TestParseDelayFrom(t *testing.T) {
	for xmlText, want := range map[string]string{
		`<message from='a@x/r'><body>hi</body><delay xmlns='urn:xmpp:delay' from='x' stamp='2026-12-03T10:00:00Z'/></message>`:      "x",
		`<message from='a@x'><body>hi</body><delay xmlns='urn:xmpp:delay' from='upload.x' stamp='2026-12-03T10:00:00Z'/></message>`: "upload.x",
		`<message from='a@x/r'><body>hi</body></message>`:                                                                           "",
		`<message from='a@x/r'><body>hi</body><x xmlns='jabber:x:delay' from='x' stamp='20261203T10:00:00'/></message>`:             "",
	} {
		var in messageIn
		if err := xml.Unmarshal([]byte(xmlText), &in); err != nil {
			t.Fatal(err)
		}
		if got := in.message().DelayFrom; got != want {
			t.Errorf("DelayFrom %q, want %q in %s", got, want, xmlText)
		}
	}
}

func TestStanzaErrorParsing(t *testing.T) {
	const reply = `<iq type='error' from='upload.x' id='s1'>
  <error type='modify'>
    <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
    <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>File too large. Maximum is 1000 bytes</text>
    <file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>1000</max-file-size></file-too-large>
  </error></iq>`
	var in iqIn
	if err := xml.Unmarshal([]byte(reply), &in); err != nil {
		t.Fatal(err)
	}
	se := in.Error.stanzaError()
	if se.Type != "modify" || se.Condition != "not-acceptable" || !se.FileTooLarge || se.MaxFileSize != 1000 || se.Text != "File too large. Maximum is 1000 bytes" {
		t.Fatalf("%+v", se)
	}
	if !se.Is(ErrFileTooLarge) || se.Is(ErrQuota) || se.Is(ErrForbidden) {
		t.Error("classification")
	}

	const quota = `<iq type='error'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
    <retry xmlns='urn:xmpp:http:upload:0' stamp='2026-09-01T08:15:00Z'/></error></iq>`
	in = iqIn{}
	if err := xml.Unmarshal([]byte(quota), &in); err != nil {
		t.Fatal(err)
	}
	se = in.Error.stanzaError()
	if r, ok := se.Retry(); !ok || r.Hour() != 8 || !se.Is(ErrQuota) || se.Condition != "resource-constraint" {
		t.Fatalf("%+v", se)
	}
}

// A thumbnail is only taken from BoB data whose content matches its cid.
func TestThumbnailMustMatchCID(t *testing.T) {
	good := Thumbnail{Data: []byte("png"), MediaType: "image/png"}
	msg := func(cid, data string) string {
		return `<message from='a@x/r'><file-sharing xmlns='urn:xmpp:sfs:0'><file xmlns='urn:xmpp:file:metadata:0'>` +
			`<thumbnail xmlns='urn:xmpp:thumbs:1' uri='cid:` + cid + `' media-type='image/png' width='4' height='3'/></file>` +
			`<sources><url-data xmlns='http://jabber.org/protocol/url-data' target='https://h/a'/></sources></file-sharing>` +
			`<data xmlns='urn:xmpp:bob' cid='` + cid + `' type='image/png'>` + data + `</data></message>`
	}
	for _, c := range []struct {
		name, xml string
		ok        bool
	}{
		{"matching", msg(good.CID(), "cG5n"), true},
		{"other content", msg(good.CID(), "b3RoZXI="), false},
		{"bad base64", msg(good.CID(), "!!"), false},
	} {
		var in messageIn
		if err := xml.Unmarshal([]byte(c.xml), &in); err != nil {
			t.Fatal(err)
		}
		th := in.message().Files[0].Thumbnail
		if (th != nil) != c.ok || (th != nil && (string(th.Data) != "png" || th.Width != 4 || th.Height != 3)) {
			t.Errorf("%s: thumbnail %+v", c.name, th)
		}
	}
}
