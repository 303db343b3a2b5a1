// Package s3 is mediaslot's S3 blob store: objects live in a bucket of AWS S3
// or of any S3-compatible server, and clients upload to and download from it
// directly through presigned URLs (store.Presigner), so in S3 mode the data
// path does not touch mediaslot.
//
// The client is configured for S3-compatible servers rather than for AWS
// alone. Request checksums are only sent when an operation requires them:
// SDKs since early 2025 add x-amz-checksum-* headers (or aws-chunked
// trailers) to every PutObject by default, which several S3-compatible
// servers reject, which over plain HTTP cannot stream an unseekable body, and
// which a presigned URL must never demand of XMPP clients. Aborted uploads
// end with a TCP reset (see abortiveClose).
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"mediaslot/store"
)

// Options say where the bucket is and how to authenticate.
type Options struct {
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:7070"; empty means AWS S3 itself.
	Endpoint string
	// Region signs every request; it must be the bucket's region (most
	// S3-compatible servers use "us-east-1"). Empty means the SDK's default
	// (AWS_REGION, ~/.aws/config).
	Region string
	Bucket string
	// AccessKeyID and SecretAccessKey are static credentials. When
	// AccessKeyID is empty the SDK's default credential chain is used
	// (environment, shared files, web identity, ECS/EC2 roles).
	AccessKeyID, SecretAccessKey string
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead of
	// <bucket>.<endpoint>/<key>; most self-hosted servers need it.
	PathStyle bool
	// Prefix is prepended verbatim to every key (e.g. "mediaslot/"), so that
	// mediaslot can share a bucket.
	Prefix string
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Presigner = (*Store)(nil)
	_ store.Checker   = (*Store)(nil)
)

// Store is a store.Store, store.Presigner and store.Checker on one S3 bucket.
type Store struct {
	client   *s3.Client
	presign  *s3.PresignClient
	fast     *presigner // nil: presign with the SDK's presign client
	creds    aws.CredentialsProvider
	bucket   string
	prefix   string
	endpoint string // for error messages
	region   string // for error messages
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Presigner = (*Store)(nil)
)

// New configures a Store. It does not contact the server, so that mediaslot
// can start while S3 is down; call Check to find out whether the bucket is
// usable.
func New(ctx context.Context, opt Options) (*Store, error) {
	if opt.Bucket == "" {
		return nil, errors.New("s3: no bucket configured")
	}
	if (opt.AccessKeyID == "") != (opt.SecretAccessKey == "") {
		return nil, errors.New("s3: set both the access key id and the secret access key, or neither to use the default credential chain")
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(abortiveClose)),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opt.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opt.Region))
	}
	if opt.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opt.AccessKeyID, opt.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("s3: no region configured (S3-compatible servers usually accept us-east-1)")
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opt.Endpoint != "" {
			o.BaseEndpoint = aws.String(opt.Endpoint)
		}
		o.UsePathStyle = opt.PathStyle
	})
	endpoint := opt.Endpoint
	if endpoint == "" {
		endpoint = "AWS S3 in " + cfg.Region
	}
	return &Store{
		client:   client,
		presign:  s3.NewPresignClient(client),
		fast:     newPresigner(ctx, client, opt.Bucket),
		creds:    cfg.Credentials,
		bucket:   opt.Bucket,
		prefix:   opt.Prefix,
		endpoint: endpoint,
		region:   cfg.Region,
	}, nil
}

// abortiveClose makes connections close with a TCP reset instead of a FIN.
// net/http closes the connection when it gives up on a request body (too
// short, too long, a read error, ctx done). A server that takes the FIN for
// the end of the body stores the truncated object: versitygw 1.8.0 does
// (fasthttp hands its handler io.EOF). A reset is an error on every server,
// so an aborted PutObject stores nothing, and no racy delete-after-failure is
// needed. Idle keep-alive connections closed this way lose nothing.
func abortiveClose(tr *http.Transport) {
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			if err := tc.SetLinger(0); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, err
	}
}

// objectKey validates a store key and maps it to the key in the bucket.
func (s *Store) objectKey(key string) (*string, error) {
	if !store.ValidKey(key) {
		return nil, store.ErrKey
	}
	return aws.String(s.prefix + key), nil
}

// Put implements store.Store. The write is conditional (If-None-Match: *),
// so that of concurrent Puts of one key exactly one wins, on the server.
// Put streams r without buffering it: the body is sent unsigned
// (UNSIGNED-PAYLOAD), because signing it would need a seekable reader.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return store.ErrSize
	}
	body := &exactReader{r: r, left: size}
	var in io.Reader = body
	if size == 0 {
		// net/http may never read an empty body, so check it here.
		if err := body.probe(); err != nil {
			return err
		}
		in = nil
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           k,
		Body:          in,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	// PutObject returns only after the SDK has closed its (locking) wrapper
	// of the body, so body.err is final and r is no longer read.
	if body.err != nil {
		// The request was aborted before the last byte: nothing is stored.
		return body.err
	}
	if err != nil {
		var ae smithy.APIError
		// AWS answers 409 ConditionalRequestConflict when a concurrent
		// conditional write to the key is in progress: the other writer wins.
		if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
			return store.ErrExists
		}
		return s.opError("put", key, err)
	}
	return nil
}

// exactReader passes on exactly left bytes of r. If r has fewer or more, or
// fails, it fails (err) before passing on the last byte, so that the request
// is aborted rather than completed with a wrong body.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		if err == io.EOF {
			err = nil
		} else if err == nil {
			err = e.probe()
		}
		if err != nil {
			e.err = err
			return 0, err // withhold the last bytes
		}
		return n, io.EOF
	case err == io.EOF:
		e.err = store.ErrSize
	case err != nil:
		e.err = err
	}
	return n, e.err
}

// probe checks that r is at its end: a further byte means ErrSize.
func (e *exactReader) probe() error {
	var b [1]byte
	switch _, err := io.ReadFull(e.r, b[:]); err {
	case io.EOF:
		return nil
	case nil:
		return store.ErrSize
	default:
		return err
	}
}

// Open implements store.Store. It asks for the object's size (so a missing
// object is ErrNotFound here) but opens no stream: the reader issues a
// ranged GetObject from its offset on the first Read after a Seek, so that
// http.ServeContent's seeks to the end and back cost nothing. The reader
// uses ctx for those requests.
func (s *Store) Open(ctx context.Context, key string) (io.ReadSeekCloser, error) {
	k, out, err := s.head(ctx, key)
	if err != nil {
		return nil, err
	}
	return &object{ctx: ctx, s: s, key: key, objKey: k, size: aws.ToInt64(out.ContentLength)}, nil
}

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	_, out, err := s.head(ctx, key)
	if err != nil {
		return store.Info{}, err
	}
	return store.Info{Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType)}, nil
}

// Delete implements store.Store. It deletes key's incoming object first,
// which a PUT to the presigned URL after Seal leaves, whether or not key
// is there: a Delete cut off after deleting key would otherwise be retried
// as "not found" and leave it for ever. S3 deletes a missing key without
// complaint, so Delete then asks whether key is there; a concurrent Delete
// may slip between the two requests, which only makes both succeed.
func (s *Store) Delete(ctx context.Context, key string) error {
	if !store.ValidKey(key) {
		return store.ErrKey
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.incomingKey(key))}); err != nil {
		return s.opError("delete incoming", key, err)
	}
	k, _, err := s.head(ctx, key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: k}); err != nil {
		return s.opError("delete", key, err)
	}
	return nil
}

// head validates key and returns its key in the bucket and the object's metadata.
func (s *Store) head(ctx context.Context, key string) (*string, *s3.HeadObjectOutput, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, nil, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: k})
	if err != nil {
		return nil, nil, s.opError("stat", key, err)
	}
	return k, out, nil
}

// opError maps a missing object to store.ErrNotFound and says which
// operation on which key failed otherwise. A missing bucket (NoSuchBucket)
// is deliberately not ErrNotFound: it is a configuration error. HeadObject
// answers without a body, so there a missing bucket, and on versitygw an
// unknown access key, also look like "NotFound"; Check tells them apart.
func (s *Store) opError(op, key string, err error) error {
	if isNotFound(err) {
		return store.ErrNotFound
	}
	return fmt.Errorf("s3: %s %s: %w", op, key, err)
}

// isNotFound reports whether err says that the object does not exist.
func isNotFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}
