package conformance

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
)

// The checks, in the order they run.
var (
	discoFeature   = Check{"disco-feature", MUST, "disco#info advertises " + client.NSUpload}
	discoIdentity  = Check{"disco-identity", SHOULD, "disco#info has the identity store/file"}
	discoListed    = Check{"disco-listed", SHOULD, "the service is the user's server or listed in its disco#items (clients find it there)"}
	discoMaxSize   = Check{"disco-max-file-size", SHOULD, "a form with FORM_TYPE " + client.NSUpload + " advertises max-file-size in bytes"}
	discoFormType  = Check{"disco-form-type", MUST, "the XEP-0128 form has type result"}
	slotGranted    = Check{"slot", MUST, "a well-formed request gets a slot with PUT and GET URLs"}
	slotURLs       = Check{"slot-urls", MUST, "PUT and GET URLs are absolute http(s) URLs"}
	slotHTTPS      = Check{"slot-https", MUST, "PUT and GET URLs use https (--allow-http skips this)"}
	slotFilename   = Check{"slot-filename", SHOULD, "the GET URL ends with the file name"}
	slotHeaders    = Check{"slot-headers", MUST, "slot headers are only Authorization, Cookie, Expires, without line breaks"}
	putAccepted    = Check{"put", MUST, "PUT with the slot headers, Content-Type and exact Content-Length succeeds (2xx)"}
	put201         = Check{"put-201", SHOULD, "PUT answers 201 Created (Siskin warns on 200)"}
	getIdentical   = Check{"get", MUST, "GET returns 200 and the uploaded bytes"}
	headCheck      = Check{"head", SHOULD, "HEAD answers 200 with Content-Length and Content-Type (Conversations needs the length)"}
	rangeCheck     = Check{"range", SHOULD, "GET with Range: bytes=N- answers 206 with a correct Content-Range (resumed downloads)"}
	corsCheck      = Check{"cors", SHOULD, "CORS: preflight for PUT and GET with Origin get Access-Control-Allow-Origin (web clients)"}
	putOnce        = Check{"put-once", SHOULD, "a second PUT to a used slot is refused (else shared files can change)"}
	unicodeName    = Check{"unicode-filename", MUST, "a non-ASCII file name gives URLs percent-encoded once, and uploads and downloads"}
	errEmptyName   = Check{"error-empty-filename", MUST, "filename='' is refused"}
	errMissingSize = Check{"error-missing-size", MUST, "a request without size is refused"}
	errZeroSize    = Check{"error-zero-size", SHOULD, "size='0' is refused (an empty upload is a client bug, though XEP-0363 does not forbid it)"}
	errNegSize     = Check{"error-negative-size", MUST, "size='-1' is refused"}
	errTextSize    = Check{"error-nonnumeric-size", MUST, "size='abc' is refused"}
	errBadRequest  = Check{"error-bad-request", SHOULD, "malformed requests are answered modify/bad-request"}
	errTooLarge    = Check{"error-too-large", MUST, "a request over max-file-size is refused"}
	errTooLargeMax = Check{"error-too-large-detail", SHOULD, "that refusal is modify/not-acceptable with <file-too-large><max-file-size> = the advertised limit"}
	errIQSet       = Check{"error-iq-set", MUST, "a slot request in an IQ of type set gets an error"}
	putLength      = Check{"put-wrong-length", MUST, "PUT with a Content-Length other than the slot size is refused"}
	putType        = Check{"put-wrong-type", SHOULD, "PUT with a Content-Type other than the declared one is refused"}
	concurrent     = Check{"concurrent-slots", MUST, "16 concurrent slot requests all succeed with distinct URLs"}
)

// Checks lists every check of the suite in order.
func Checks() []Check {
	return []Check{discoFeature, discoIdentity, discoListed, discoMaxSize, discoFormType,
		slotGranted, slotURLs, slotHTTPS, slotFilename, slotHeaders, putAccepted, put201,
		getIdentical, headCheck, rangeCheck, corsCheck, putOnce, unicodeName,
		errEmptyName, errMissingSize, errZeroSize, errNegSize, errTextSize, errBadRequest,
		errTooLarge, errTooLargeMax, errIQSet, putLength, putType, concurrent}
}

// Options configure a run.
type Options struct {
	Service jid.JID
	// AllowHTTP skips the https check, for test deployments without TLS.
	AllowHTTP bool
}

// fileSize is the size of the test uploads: enough for a meaningful Range.
const fileSize = 4096

// webOrigin is the Origin the CORS check claims.
const webOrigin = "https://webclient.example"

type suite struct {
	c      *client.Client
	svc    jid.JID
	opt    Options
	report Report
}

// Run runs every check against opt.Service as the logged-in c. It uploads a
// few small files (about 40 KB in all).
func Run(ctx context.Context, c *client.Client, opt Options) Report {
	s := &suite{c: c, svc: opt.Service, opt: opt, report: Report{Service: opt.Service.String()}}
	max := s.discovery(ctx)
	s.mainSlot(ctx)
	s.unicode(ctx)
	s.errors(ctx, max)
	s.putValidation(ctx)
	s.concurrency(ctx)
	return s.report
}

func (s *suite) result(c Check, ok bool, format string, a ...any) {
	st := Fail
	if ok {
		st = Pass
	}
	s.report.Results = append(s.report.Results, Result{Check: c, Status: st, Detail: fmt.Sprintf(format, a...)})
}

func (s *suite) skip(c Check, format string, a ...any) {
	s.report.Results = append(s.report.Results, Result{Check: c, Status: Skip, Detail: fmt.Sprintf(format, a...)})
}

// discovery checks disco#info and disco#items and returns the advertised
// max-file-size (0 if none).
func (s *suite) discovery(ctx context.Context) int64 {
	info, err := s.c.Info(ctx, s.svc)
	if err != nil {
		s.result(discoFeature, false, "disco#info failed: %v", err)
		for _, c := range []Check{discoIdentity, discoMaxSize, discoFormType} {
			s.skip(c, "no disco#info")
		}
	} else {
		s.result(discoFeature, info.HasFeature(client.NSUpload), "features: %s", strings.Join(info.Features, " "))
		var ids []string
		for _, id := range info.Identities {
			ids = append(ids, id.Category+"/"+id.Type)
		}
		s.result(discoIdentity, info.HasIdentity("store", "file"), "identities: %s", strings.Join(ids, " "))
	}
	s.listed(ctx)
	if err != nil {
		return 0
	}
	form, ok := info.Form(client.NSUpload)
	max := info.MaxFileSize()
	switch {
	case !ok:
		s.result(discoMaxSize, false, "no form with FORM_TYPE %s among %d forms", client.NSUpload, len(info.Forms))
		s.skip(discoFormType, "no form")
		return 0
	case max <= 0:
		s.result(discoMaxSize, false, "max-file-size is %q, not a positive number of bytes", form.Fields["max-file-size"])
	default:
		s.result(discoMaxSize, true, "max-file-size %d", max)
	}
	s.result(discoFormType, form.Type == "result", "form type %q", form.Type)
	return max
}

func (s *suite) listed(ctx context.Context) {
	server := s.c.JID().Domain()
	if s.svc.Equal(server) {
		s.result(discoListed, true, "the service is the server %s", server)
		return
	}
	items, err := s.c.Items(ctx, server)
	if err != nil {
		s.result(discoListed, false, "disco#items of %s failed: %v", server, err)
		return
	}
	found := slices.ContainsFunc(items, func(j jid.JID) bool { return j.Equal(s.svc) })
	var names []string
	for _, j := range items {
		names = append(names, j.String())
	}
	s.result(discoListed, found, "disco#items of %s: %s", server, strings.Join(names, " "))
}

// upload is one slot and the bytes meant for it.
type upload struct {
	name, ctype string
	data        []byte
	slot        client.Slot
}

func newUpload(name, ctype string, size int) *upload {
	u := &upload{name: name, ctype: ctype, data: make([]byte, size)}
	_, _ = rand.Read(u.data)
	return u
}

func (s *suite) requestSlot(ctx context.Context, u *upload) error {
	slot, err := s.c.RequestSlot(ctx, s.svc, client.File{Name: u.name, Size: int64(len(u.data)), ContentType: u.ctype})
	u.slot = slot
	return err
}

// put uploads body to u's slot with the given Content-Type.
func (s *suite) put(ctx context.Context, u *upload, body []byte, ctype string) (int, error) {
	return s.c.Upload(ctx, u.slot, bytes.NewReader(body), int64(len(body)), ctype, nil)
}

func (s *suite) do(ctx context.Context, method, url string, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := s.c.HTTPClient().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

func (s *suite) mainSlot(ctx context.Context) {
	u := newUpload("mediaslot-check.txt", "text/plain", fileSize)
	if err := s.requestSlot(ctx, u); err != nil {
		s.result(slotGranted, false, "%v", err)
		for _, c := range []Check{slotURLs, slotHTTPS, slotFilename, slotHeaders, putAccepted, put201, getIdentical, headCheck, rangeCheck, corsCheck, putOnce} {
			s.skip(c, "no slot")
		}
		return
	}
	s.result(slotGranted, true, "PUT %s GET %s", client.RedactURL(u.slot.PutURL), u.slot.GetURL)
	s.checkURLs(u)
	var bad []string
	for _, h := range u.slot.Headers {
		if !client.AllowedHeader(h.Name) || strings.ContainsAny(h.Value, "\r\n") {
			bad = append(bad, strconv.Quote(h.Name))
		}
	}
	var names []string
	for _, h := range u.slot.Headers {
		names = append(names, h.Name)
	}
	if len(bad) > 0 {
		s.result(slotHeaders, false, "not allowed or with line breaks: %s", strings.Join(bad, ", "))
	} else {
		s.result(slotHeaders, true, "headers: %s", orNone(strings.Join(names, ", ")))
	}

	status, err := s.put(ctx, u, u.data, u.ctype)
	s.result(putAccepted, err == nil, "%s", statusDetail(status, err))
	if err != nil {
		for _, c := range []Check{put201, getIdentical, headCheck, rangeCheck, putOnce} {
			s.skip(c, "the upload failed")
		}
		s.cors(ctx, u)
		return
	}
	s.result(put201, status == http.StatusCreated, "HTTP %d", status)
	s.download(ctx, u)
	s.cors(ctx, u)
	status, err = s.put(ctx, u, u.data, u.ctype)
	s.result(putOnce, err != nil, "second PUT: %s", statusDetail(status, err))
}

func (s *suite) checkURLs(u *upload) {
	var problems []string
	https := true
	for _, raw := range []string{u.slot.PutURL, u.slot.GetURL} {
		p, err := url.Parse(raw)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", client.RedactURL(raw), err))
		case p.Scheme != "http" && p.Scheme != "https" || p.Host == "":
			problems = append(problems, fmt.Sprintf("%s is not an absolute http(s) URL", client.RedactURL(raw)))
		}
		https = https && err == nil && p.Scheme == "https"
	}
	s.result(slotURLs, len(problems) == 0, "%s", orNone(strings.Join(problems, "; ")))
	switch {
	case https:
		s.result(slotHTTPS, true, "")
	case s.opt.AllowHTTP:
		s.skip(slotHTTPS, "plain http allowed by --allow-http (Dino and Gajim refuse it)")
	default:
		s.result(slotHTTPS, false, "plain http: Dino and Gajim refuse such slots")
	}
	s.result(slotFilename, endsWithName(u.slot.GetURL, u.name), "GET URL %s", u.slot.GetURL)
}

// endsWithName reports whether the last path segment of raw, unescaped once,
// is name: escaped exactly once, not raw and not twice.
func endsWithName(raw, name string) bool {
	p, err := url.Parse(raw)
	if err != nil {
		return false
	}
	esc := p.EscapedPath()
	seg := esc[strings.LastIndex(esc, "/")+1:]
	un, err := url.PathUnescape(seg)
	return err == nil && un == name
}

func (s *suite) download(ctx context.Context, u *upload) {
	resp, body, err := s.do(ctx, http.MethodGet, u.slot.GetURL, nil)
	switch {
	case err != nil:
		s.result(getIdentical, false, "%v", err)
	case resp.StatusCode != http.StatusOK:
		s.result(getIdentical, false, "HTTP %d", resp.StatusCode)
	default:
		s.result(getIdentical, bytes.Equal(body, u.data), "HTTP 200, %d bytes, identical: %t", len(body), bytes.Equal(body, u.data))
	}

	resp, body, err = s.do(ctx, http.MethodHead, u.slot.GetURL, nil)
	if err != nil {
		s.result(headCheck, false, "%v", err)
	} else {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		cl := resp.Header.Get("Content-Length")
		ok := resp.StatusCode == http.StatusOK && cl == strconv.Itoa(len(u.data)) && mt == u.ctype && len(body) == 0
		s.result(headCheck, ok, "HTTP %d, Content-Length %q, Content-Type %q, body %d bytes", resp.StatusCode, cl, resp.Header.Get("Content-Type"), len(body))
	}

	const from = 1000
	resp, body, err = s.do(ctx, http.MethodGet, u.slot.GetURL, http.Header{"Range": {fmt.Sprintf("bytes=%d-", from)}})
	if err != nil {
		s.result(rangeCheck, false, "%v", err)
		return
	}
	want := fmt.Sprintf("bytes %d-%d/%d", from, len(u.data)-1, len(u.data))
	cr := resp.Header.Get("Content-Range")
	ok := resp.StatusCode == http.StatusPartialContent && cr == want && bytes.Equal(body, u.data[from:])
	s.result(rangeCheck, ok, "HTTP %d, Content-Range %q (want %q), %d bytes", resp.StatusCode, cr, want, len(body))
}

func (s *suite) cors(ctx context.Context, u *upload) {
	var problems []string
	for _, c := range []struct{ url, method string }{{u.slot.PutURL, http.MethodPut}, {u.slot.GetURL, http.MethodGet}} {
		resp, _, err := s.do(ctx, http.MethodOptions, c.url, http.Header{
			"Origin":                         {webOrigin},
			"Access-Control-Request-Method":  {c.method},
			"Access-Control-Request-Headers": {"content-type"},
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("preflight for %s: %v", c.method, err))
			continue
		}
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		methods := strings.ToUpper(resp.Header.Get("Access-Control-Allow-Methods"))
		switch {
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			problems = append(problems, fmt.Sprintf("preflight for %s: HTTP %d", c.method, resp.StatusCode))
		case acao != "*" && acao != webOrigin:
			problems = append(problems, fmt.Sprintf("preflight for %s: Access-Control-Allow-Origin %q", c.method, acao))
		case methods != "" && methods != "*" && !strings.Contains(methods, c.method):
			problems = append(problems, fmt.Sprintf("preflight for %s: Access-Control-Allow-Methods %q", c.method, methods))
		}
	}
	if resp, _, err := s.do(ctx, http.MethodGet, u.slot.GetURL, http.Header{"Origin": {webOrigin}}); err == nil {
		if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "*" && acao != webOrigin {
			problems = append(problems, fmt.Sprintf("GET with Origin: Access-Control-Allow-Origin %q", acao))
		}
	}
	s.result(corsCheck, len(problems) == 0, "%s", orNone(strings.Join(problems, "; ")))
}

func (s *suite) unicode(ctx context.Context) {
	u := newUpload("mediaslot check été 🎉.txt", "text/plain", 100)
	if err := s.requestSlot(ctx, u); err != nil {
		s.result(unicodeName, false, "slot refused: %v", err)
		return
	}
	var problems []string
	for _, raw := range []string{u.slot.PutURL, u.slot.GetURL} {
		if strings.ContainsFunc(raw, func(r rune) bool { return r > 0x7e || r <= ' ' }) {
			problems = append(problems, fmt.Sprintf("%s has raw non-ASCII characters or spaces", client.RedactURL(raw)))
		}
		if strings.Contains(raw, "%25") {
			problems = append(problems, fmt.Sprintf("%s is escaped twice (%%25)", client.RedactURL(raw)))
		}
	}
	if !endsWithName(u.slot.GetURL, u.name) {
		problems = append(problems, "the GET URL does not end with the name escaped once")
	}
	if _, err := s.put(ctx, u, u.data, u.ctype); err != nil {
		problems = append(problems, fmt.Sprintf("upload: %v", err))
	} else if resp, body, err := s.do(ctx, http.MethodGet, u.slot.GetURL, nil); err != nil {
		problems = append(problems, fmt.Sprintf("download: %v", err))
	} else if resp.StatusCode != http.StatusOK || !bytes.Equal(body, u.data) {
		problems = append(problems, fmt.Sprintf("download: HTTP %d, %d bytes, identical: %t", resp.StatusCode, len(body), bytes.Equal(body, u.data)))
	}
	s.result(unicodeName, len(problems) == 0, "GET %s%s", u.slot.GetURL, prefixed("; ", strings.Join(problems, "; ")))
}

func attr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }

func (s *suite) errors(ctx context.Context, max int64) {
	cases := []struct {
		check Check
		attrs []xml.Attr
	}{
		{errEmptyName, []xml.Attr{attr("filename", ""), attr("size", "100"), attr("content-type", "text/plain")}},
		{errMissingSize, []xml.Attr{attr("filename", "nosize.txt"), attr("content-type", "text/plain")}},
		{errZeroSize, []xml.Attr{attr("filename", "zero.txt"), attr("size", "0"), attr("content-type", "text/plain")}},
		{errNegSize, []xml.Attr{attr("filename", "negative.txt"), attr("size", "-1"), attr("content-type", "text/plain")}},
		{errTextSize, []xml.Attr{attr("filename", "text.txt"), attr("size", "abc"), attr("content-type", "text/plain")}},
	}
	var notBadRequest []string
	for _, c := range cases {
		_, err := s.c.RequestSlotRaw(ctx, s.svc, "get", c.attrs...)
		var se *client.StanzaError
		switch {
		case err == nil:
			s.result(c.check, false, "a slot was granted")
		case errors.As(err, &se):
			s.result(c.check, true, "%s", condition(se))
			if se.Type != "modify" || se.Condition != "bad-request" {
				notBadRequest = append(notBadRequest, fmt.Sprintf("%s: %s", c.check.ID, condition(se)))
			}
		default:
			s.result(c.check, false, "no error reply: %v", err)
		}
	}
	s.result(errBadRequest, len(notBadRequest) == 0, "%s", orNone(strings.Join(notBadRequest, "; ")))

	if max <= 0 {
		s.skip(errTooLarge, "no max-file-size advertised")
		s.skip(errTooLargeMax, "no max-file-size advertised")
	} else {
		_, err := s.c.RequestSlot(ctx, s.svc, client.File{Name: "big.bin", Size: max + 1, ContentType: "application/octet-stream"})
		var se *client.StanzaError
		switch {
		case err == nil:
			s.result(errTooLarge, false, "a slot for %d bytes was granted although max-file-size is %d", max+1, max)
			s.skip(errTooLargeMax, "no refusal")
		case errors.As(err, &se):
			s.result(errTooLarge, true, "%s", condition(se))
			ok := se.Type == "modify" && se.Condition == "not-acceptable" && se.FileTooLarge && se.MaxFileSize == max
			s.result(errTooLargeMax, ok, "%s; <file-too-large> %t, <max-file-size> %d (advertised %d)", condition(se), se.FileTooLarge, se.MaxFileSize, max)
		default:
			s.result(errTooLarge, false, "no error reply: %v", err)
			s.skip(errTooLargeMax, "no refusal")
		}
	}

	_, err := s.c.RequestSlotRaw(ctx, s.svc, "set", attr("filename", "set.txt"), attr("size", "100"), attr("content-type", "text/plain"))
	var se *client.StanzaError
	switch {
	case err == nil:
		s.result(errIQSet, false, "a slot was granted for an IQ set")
	case errors.As(err, &se):
		s.result(errIQSet, true, "%s", condition(se))
	default:
		s.result(errIQSet, false, "no error reply: %v", err)
	}
}

func (s *suite) putValidation(ctx context.Context) {
	var details []string
	refused := true
	for _, delta := range []int{-1, +1} {
		u := newUpload("length.bin", "application/octet-stream", 100)
		if err := s.requestSlot(ctx, u); err != nil {
			details, refused = append(details, fmt.Sprintf("slot refused: %v", err)), false
			continue
		}
		body := make([]byte, len(u.data)+delta)
		status, err := s.put(ctx, u, body, u.ctype)
		refused = refused && err != nil
		details = append(details, fmt.Sprintf("%d bytes for a %d-byte slot: %s", len(body), len(u.data), statusDetail(status, err)))
	}
	s.result(putLength, refused, "%s", strings.Join(details, "; "))

	u := newUpload("type.txt", "text/plain", 100)
	if err := s.requestSlot(ctx, u); err != nil {
		s.result(putType, false, "slot refused: %v", err)
		return
	}
	status, err := s.put(ctx, u, u.data, "application/octet-stream")
	s.result(putType, err != nil, "declared text/plain, sent application/octet-stream: %s", statusDetail(status, err))
}

func (s *suite) concurrency(ctx context.Context) {
	const n = 16
	uploads := make([]*upload, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range uploads {
		uploads[i] = newUpload(fmt.Sprintf("concurrent-%02d.bin", i), "application/octet-stream", 10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.requestSlot(ctx, uploads[i])
		}()
	}
	wg.Wait()
	puts, gets := make(map[string]bool), make(map[string]bool)
	failed := 0
	var first error
	for i, u := range uploads {
		if errs[i] != nil {
			failed++
			first = cmp.Or(first, errs[i])
			continue
		}
		puts[u.slot.PutURL], gets[u.slot.GetURL] = true, true
	}
	ok := failed == 0 && len(puts) == n && len(gets) == n
	detail := fmt.Sprintf("%d of %d granted, %d distinct PUT and %d distinct GET URLs", n-failed, n, len(puts), len(gets))
	if first != nil {
		detail += "; first refusal: " + first.Error()
	}
	s.result(concurrent, ok, "%s", detail)
}

func condition(se *client.StanzaError) string {
	s := se.Type + "/" + se.Condition
	if se.Text != "" {
		s += " (" + se.Text + ")"
	}
	return s
}

func statusDetail(status int, err error) string {
	var he *client.HTTPError
	switch {
	case errors.As(err, &he):
		return fmt.Sprintf("HTTP %d %s", he.Status, he.Text)
	case err != nil:
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d", status)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
