package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"mediaslot/client/aesgcm"
)

// ErrDownloadTooLarge means a download exceeded its size limit.
var ErrDownloadTooLarge = errors.New("download exceeds the size limit")

// Upload PUTs size bytes from body to the slot with the slot's allowed
// headers, Content-Type (if not empty) and an exact Content-Length, calling
// progress (if not nil) with the bytes sent so far. It returns the HTTP
// status: XEP-0363 wants 201 Created, many services answer 200. A refusal
// is an *HTTPError.
func (c *Client) Upload(ctx context.Context, slot Slot, body io.Reader, size int64, contentType string, progress func(sent int64)) (int, error) {
	if progress != nil {
		body = &progressReader{r: body, report: progress}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, slot.PutURL, body)
	if err != nil {
		return 0, fmt.Errorf("PUT URL %s: %w", RedactURL(slot.PutURL), err)
	}
	req.Header = slot.PutHeader()
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody // else net/http sends no Content-Length for an empty body
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, timeoutError(ctx, fmt.Errorf("PUT %s: %w", RedactURL(slot.PutURL), err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, httpError(http.MethodPut, slot.PutURL, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

type progressReader struct {
	r      io.Reader
	n      int64
	report func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		p.report(p.n)
	}
	return n, err
}

// httpError reads the start of a refusal's body for the error text: the
// <title> of an HTML error page, else the text itself, shortened.
func httpError(method, url string, resp *http.Response) *HTTPError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := string(b)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		if _, after, ok := strings.Cut(text, "<title>"); ok {
			text, _, _ = strings.Cut(after, "</title>")
		}
	}
	text = strings.Join(strings.Fields(strings.ToValidUTF8(text, "")), " ")
	if len(text) > 200 {
		text = strings.ToValidUTF8(text[:200], "") + "…"
	}
	return &HTTPError{Method: method, URL: RedactURL(url), Status: resp.StatusCode, Text: text}
}

// Download fetches link into w and returns the bytes written. http(s) URLs
// are copied as they come; aesgcm:// links (XEP-0454) are fetched over https
// (http with Options.AESGCMOverHTTP) and decrypted, which needs the whole
// ciphertext in memory. More than limit bytes of content is an error
// wrapping ErrDownloadTooLarge.
func (c *Client) Download(ctx context.Context, link string, w io.Writer, limit int64) (int64, error) {
	if !aesgcm.IsURL(link) {
		return c.get(ctx, link, w, limit)
	}
	u, key, err := aesgcm.ParseURL(link)
	if err != nil {
		return 0, err
	}
	if c.aesgcmOverHTTP {
		u.Scheme = "http"
	}
	var buf bytes.Buffer
	if _, err := c.get(ctx, u.String(), &buf, limit+aesgcm.TagSize); err != nil {
		return 0, err
	}
	plain, err := key.Open(buf.Bytes())
	if err != nil {
		return 0, fmt.Errorf("decrypting %s: %w", RedactURL(u.String()), err)
	}
	n, err := w.Write(plain)
	return int64(n), err
}

// get copies a GET of url to w, refusing more than limit bytes.
func (c *Client) get(ctx context.Context, url string, w io.Writer, limit int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	switch req.URL.Scheme {
	case "http", "https":
	default:
		return 0, fmt.Errorf("cannot download %s: scheme %q", RedactURL(url), req.URL.Scheme)
	}
	// The stored bytes, not a recompressed version: hashes are over them.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, timeoutError(ctx, fmt.Errorf("GET %s: %w", RedactURL(url), err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, httpError(http.MethodGet, url, resp)
	}
	if resp.ContentLength > limit {
		return 0, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrDownloadTooLarge, RedactURL(url), resp.ContentLength, limit)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return n, timeoutError(ctx, fmt.Errorf("GET %s: %w", RedactURL(url), err))
	}
	if n > limit {
		return n, fmt.Errorf("%w: %s sent more than %d bytes", ErrDownloadTooLarge, RedactURL(url), limit)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET %s: got %d of %d bytes", RedactURL(url), n, resp.ContentLength)
	}
	return n, nil
}
