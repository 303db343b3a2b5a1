package s3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// signPut presigns a PUT of objKey as the SDK's SigV4 signer does (what
// presign builds and signs), written out for the one request a slot needs:
// the signer's generality (header rules, url.Values, sorting, a fresh HMAC
// per step) cost about 17 µs of a slot's 60. Every URL must equal the SDK
// presign client's byte for byte; TestPresignMatchesSDK and the probe in
// newPresigner check that, and a presigner that differs is not used.
func (p *presigner) signPut(creds aws.Credentials, objKey string, size int64, contentType, expires string, now time.Time) string {
	now = now.UTC()
	date := now.Format("20060102T150405Z")
	scope := date[:8] + "/" + p.signingRegion + "/" + p.signingName + "/aws4_request"
	signed, signedQ := "content-length;host", "content-length%3Bhost"
	if contentType != "" {
		signed, signedQ = "content-length;content-type;host", "content-length%3Bcontent-type%3Bhost"
	}
	key, credential := p.keys.get(creds, date[:8], p.signingRegion, p.signingName, scope)
	// The canonical query: keys sorted as bytes (upper case first), values
	// escaped as url.QueryEscape with %20 for spaces.
	var q strings.Builder
	q.Grow(256 + len(creds.SessionToken))
	q.WriteString("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=")
	q.WriteString(credential)
	q.WriteString("&X-Amz-Date=" + date + "&X-Amz-Expires=" + expires)
	if creds.SessionToken != "" {
		q.WriteString("&X-Amz-Security-Token=")
		q.WriteString(queryEscape(creds.SessionToken))
	}
	q.WriteString("&X-Amz-SignedHeaders=")
	q.WriteString(signedQ)
	q.WriteString("&x-id=PutObject")
	query := q.String()

	u := p.objectURL(objKey)
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}

	var c strings.Builder
	c.Grow(256 + len(path) + len(query) + len(contentType))
	c.WriteString("PUT\n")
	c.WriteString(path)
	c.WriteString("\n")
	c.WriteString(query)
	c.WriteString("\ncontent-length:")
	c.WriteString(strconv.FormatInt(size, 10))
	if contentType != "" {
		c.WriteString("\ncontent-type:")
		c.WriteString(strings.TrimSpace(stripExcessSpaces(contentType)))
	}
	c.WriteString("\nhost:")
	c.WriteString(p.canonicalHost)
	c.WriteString("\n\n")
	c.WriteString(signed)
	c.WriteString("\nUNSIGNED-PAYLOAD")
	sum := sha256.Sum256([]byte(c.String()))

	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(toSign))
	u.RawQuery = query + "&X-Amz-Signature=" + hex.EncodeToString(mac.Sum(nil))
	return u.String()
}

// canonicalHost is the host the signer signs: the URL's, without a port
// that is the scheme's default.
func canonicalHost(scheme, host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil || !(scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		return host
	}
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// stripExcessSpaces folds runs of spaces into one, as the signer does for
// header values.
func stripExcessSpaces(s string) string {
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// signingKeys caches the SigV4 signing key and the escaped credential,
// which depend only on the credentials, the day, the region and the
// service: four HMACs saved per URL.
type signingKeys struct {
	mu         sync.Mutex
	id, secret string
	scope      string // day/region/service/aws4_request
	k          []byte
	credential string
}

func (c *signingKeys) get(creds aws.Credentials, day, region, service, scope string) ([]byte, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.k == nil || c.id != creds.AccessKeyID || c.secret != creds.SecretAccessKey || c.scope != scope {
		k := hmacSHA256([]byte("AWS4"+creds.SecretAccessKey), day)
		k = hmacSHA256(k, region)
		k = hmacSHA256(k, service)
		c.k = hmacSHA256(k, "aws4_request")
		c.credential = queryEscape(creds.AccessKeyID + "/" + scope)
		c.id, c.secret, c.scope = creds.AccessKeyID, creds.SecretAccessKey, scope
	}
	return c.k, c.credential
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
