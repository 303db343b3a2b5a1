package s3

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"mediaslot/store"
)

// PresignPut implements store.Presigner. The URL signs host, content-length
// and, when contentType is not empty, content-type: S3 then refuses a body of
// another length or type. It signs nothing else, because XMPP clients send
// only the headers of the slot, and many not even those: no x-amz-acl, no
// checksum headers (see New). The returned headers hold the Content-Type to
// send, or nothing. A ttl of 0 means the SDK's default of 15 minutes.
//
// A size of 0 signs neither length nor type (the SDK's presign client drops
// both): such a URL accepts any body. upload's policy refuses empty slots.
//
// S3 accepts the URL again until it expires and then overwrites the object
// (If-None-Match cannot be required of clients), so the URL writes to key's
// incoming object, which Seal copies out of its reach.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType string, ttl time.Duration) (string, http.Header, error) {
	if !store.ValidKey(key) {
		return "", nil, store.ErrKey
	}
	k := s.incomingKey(key)
	if size < 0 {
		return "", nil, store.ErrSize
	}
	headers := http.Header{}
	if contentType != "" {
		headers.Set("Content-Type", contentType)
	}
	var u string
	var err error
	if s.fast != nil {
		u, err = s.fast.presignPut(ctx, k, size, contentType, ttl)
	} else {
		u, err = presignPutSDK(ctx, s.presign, s.bucket, k, size, contentType, ttl)
	}
	if err != nil {
		return "", nil, fmt.Errorf("s3: presign put %s: %w", key, err)
	}
	return u, headers, nil
}

// PresignGet implements store.Presigner. The URL is bound to GET (HEAD is
// refused) and expires: never hand it out as a slot's stable GET URL. The
// type and disposition travel as S3's response-content-* overrides, which
// are part of the signature.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, contentType, disposition string) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	var u string
	if s.fast != nil {
		u, err = s.fast.presignGet(ctx, *k, ttl, contentType, disposition)
	} else {
		u, err = presignGetSDK(ctx, s.presign, s.bucket, *k, ttl, contentType, disposition)
	}
	if err != nil {
		return "", fmt.Errorf("s3: presign get %s: %w", key, err)
	}
	return u, nil
}

// presignPutSDK and presignGetSDK are the reference the presigner must
// match, and the fallback where it cannot.
func presignPutSDK(ctx context.Context, c *s3.PresignClient, bucket, objKey string, size int64, contentType string, ttl time.Duration) (string, error) {
	in := &s3.PutObjectInput{Bucket: &bucket, Key: &objKey, ContentLength: &size}
	if contentType != "" {
		in.ContentType = &contentType
	}
	req, err := c.PresignPutObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}

func presignGetSDK(ctx context.Context, c *s3.PresignClient, bucket, objKey string, ttl time.Duration, contentType, disposition string) (string, error) {
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &objKey}
	if contentType != "" {
		in.ResponseContentType = &contentType
	}
	if disposition != "" {
		in.ResponseContentDisposition = &disposition
	}
	req, err := c.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}

// presigner makes the URLs the SDK's presign client makes, at a fraction of
// its cost: the presign client runs the whole operation stack per URL
// (endpoint rules and a dozen middlewares), though for one bucket everything
// but the key, size, type and expiry is the same every time. The presigner
// resolves that part once, with the SDK's own endpoint resolver, builds the
// request as the SDK's serializer would, and signs it with the SDK's SigV4
// signer (presign).
type presigner struct {
	signer *v4.Signer
	creds  aws.CredentialsProvider
	// scheme, host and the paths are those of the resolved endpoint, to
	// which the key is joined as the SDK joins it: path style or not,
	// dotted bucket names and custom endpoint paths are the resolver's
	// business.
	scheme, host, path, rawPath string
	// signingName and signingRegion come from the endpoint's auth scheme,
	// not from Options: for region aws-global the SDK signs for us-east-1.
	signingName, signingRegion string
	// now is time.Now, but pinned to the SDK's signing time where URLs are
	// compared with the SDK's.
	now func() time.Time
}

// newPresigner returns nil for a configuration whose URLs the presigner
// does not reproduce exactly. It ensures that by comparing a probe URL with
// the SDK's (see matchesSDK), so that no environment setting, odd bucket
// name or SDK update can make the two differ unnoticed; New then keeps the
// presign client.
func newPresigner(ctx context.Context, client *s3.Client, bucket string) *presigner {
	o := client.Options()
	// Anonymous credentials make the SDK hand out unsigned URLs.
	if o.Credentials == nil || aws.IsCredentialsProvider(o.Credentials, (*aws.AnonymousCredentials)(nil)) {
		return nil
	}
	// The same parameters as the SDK's bindEndpointParams for PutObject and
	// GetObject, whose Key the rules do not use.
	endpt, err := o.EndpointResolverV2.ResolveEndpoint(ctx, s3.EndpointParameters{
		Bucket:                         &bucket,
		Region:                         &o.Region,
		Endpoint:                       o.BaseEndpoint,
		UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:                   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	})
	if err != nil {
		return nil
	}
	// Only plain SigV4 can be reproduced here. S3 Express directory buckets
	// need session credentials (and the probe would fetch them from the
	// server), multi-region access points SigV4a.
	auth, ok := smithyauth.GetAuthOptions(&endpt.Properties)
	if !ok || len(auth) == 0 || auth[0].SchemeID != "sigv4" {
		return nil
	}
	name, _ := smithyhttp.GetSigV4SigningName(&auth[0].SignerProperties)
	region, _ := smithyhttp.GetSigV4SigningRegion(&auth[0].SignerProperties)
	p := &presigner{
		// As the S3 client's own presigner: S3 signs the path as sent.
		signer:        v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
		creds:         o.Credentials,
		scheme:        endpt.URI.Scheme,
		host:          endpt.URI.Host,
		path:          endpt.URI.Path,
		rawPath:       cmp.Or(endpt.URI.RawPath, endpt.URI.Path), // as the SDK's endpoint middleware does
		signingName:   name,
		signingRegion: region,
		now:           time.Now,
	}
	if !p.matchesSDK(ctx, client, bucket) {
		return nil
	}
	return p
}

// matchesSDK presigns a probe PUT and GET both ways, at the SDK's signing
// time and with made-up credentials (the real ones may not be retrievable
// yet, and New must not wait for them), and reports whether the URLs are
// identical. The probe key needs escaping and the session token shows in the
// URL, so that those paths are compared too.
func (p *presigner) matchesSDK(ctx context.Context, client *s3.Client, bucket string) bool {
	creds := credentials.NewStaticCredentialsProvider("AKIDMEDIASLOTPROBE", "probe-secret", "probe-token")
	sdk := s3.NewPresignClient(client, s3.WithPresignClientFromClientOptions(func(o *s3.Options) { o.Credentials = creds }))
	probe := *p
	probe.creds = creds
	const key, ctype, disposition = "probe/ä +%", "image/jpeg", `inline; filename="a b.jpg"`
	const ttl = 5 * time.Minute
	want, err := presignPutSDK(ctx, sdk, bucket, key, 1234, ctype, ttl)
	if err != nil || probe.pinClock(want) != nil {
		return false
	}
	if got, err := probe.presignPut(ctx, key, 1234, ctype, ttl); err != nil || got != want {
		return false
	}
	want, err = presignGetSDK(ctx, sdk, bucket, key, ttl, ctype, disposition)
	if err != nil || probe.pinClock(want) != nil {
		return false
	}
	got, err := probe.presignGet(ctx, key, ttl, ctype, disposition)
	return err == nil && got == want
}

// pinClock sets p's clock to the signing time of the presigned URL u: the
// SDK's clock cannot be set, and the signature depends on the time only
// through X-Amz-Date, to the second.
func (p *presigner) pinClock(u string) error {
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	t, err := time.Parse("20060102T150405Z", pu.Query().Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	p.now = func() time.Time { return t }
	return nil
}

func (p *presigner) presignPut(ctx context.Context, objKey string, size int64, contentType string, ttl time.Duration) (string, error) {
	expires, err := expiresSeconds(ttl)
	if err != nil {
		return "", err
	}
	// The signer signs content-length from the request's ContentLength and
	// content-type from its header. The presign client drops the type of an
	// empty body and the signer signs no content-length of 0, so such a URL
	// signs host alone (not a slot's case: upload refuses empty slots).
	var h http.Header
	if size > 0 && contentType != "" {
		h = http.Header{"Content-Type": {contentType}}
	}
	return p.presign(ctx, http.MethodPut, objKey, "X-Amz-Expires="+expires+"&x-id=PutObject", h, size)
}

func (p *presigner) presignGet(ctx context.Context, objKey string, ttl time.Duration, contentType, disposition string) (string, error) {
	expires, err := expiresSeconds(ttl)
	if err != nil {
		return "", err
	}
	q := url.Values{"X-Amz-Expires": {expires}, "x-id": {"GetObject"}}
	if contentType != "" {
		q.Set("response-content-type", contentType)
	}
	if disposition != "" {
		q.Set("response-content-disposition", disposition)
	}
	return p.presign(ctx, http.MethodGet, objKey, q.Encode(), nil, 0)
}

// expiresSeconds is X-Amz-Expires for ttl as the SDK's presign client
// writes it: whole seconds, and 15 minutes for 0.
func expiresSeconds(ttl time.Duration) (string, error) {
	switch {
	case ttl < 0:
		return "", fmt.Errorf("presign URL duration must be 0 or greater, %v", ttl)
	case ttl == 0:
		ttl = 15 * time.Minute
	}
	return strconv.FormatInt(int64(ttl/time.Second), 10), nil
}

// presign builds the request the SDK's serializer and endpoint middleware
// would build and signs it with the SDK's signer and an unsigned payload,
// as the presign client does.
func (p *presigner) presign(ctx context.Context, method, objKey, rawQuery string, h http.Header, size int64) (string, error) {
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("retrieving credentials: %w", err)
	}
	u := p.objectURL(objKey)
	u.RawQuery = rawQuery
	req := &http.Request{Method: method, URL: &u, Header: h, ContentLength: size}
	signed, _, err := p.signer.PresignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", p.signingName, p.signingRegion, p.now())
	return signed, err
}

// objectURL is the URL of objKey as the SDK's serializer and endpoint
// middleware build it: the key is a greedy path label, escaped with its
// slashes kept.
func (p *presigner) objectURL(objKey string) url.URL {
	return url.URL{
		Scheme:  p.scheme,
		Host:    p.host,
		Path:    smithyhttp.JoinPath(p.path, "/"+objKey),
		RawPath: smithyhttp.JoinPath(p.rawPath, "/"+httpbinding.EscapePath(objKey, false)),
	}
}
