package s3

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// presignEnv isolates New from the machine's AWS configuration and sets env.
// Tests that use it cannot run in parallel.
func presignEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range []string{
		"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_AUTH_SCHEME_PREFERENCE",
		"AWS_S3_DISABLE_EXPRESS_SESSION_AUTH", "AWS_S3_USE_ARN_REGION", "AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// The presigner must hand out exactly the URLs of the SDK's presign client
// (the reference, not a spec of our own), for every configuration it takes
// on and every key, size, type and expiry. Per configuration New compares
// one probe; this compares many, at the SDK's signing time.
func TestPresignMatchesSDK(t *testing.T) {
	static := func(o Options) Options {
		o.AccessKeyID, o.SecretAccessKey = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
		return o
	}
	cases := []struct {
		name string
		env  map[string]string
		opt  Options
		host string // the URL's, to see that the case tests what it says
		fast bool
	}{
		{name: "path style, http, port", opt: static(Options{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", Bucket: "media", PathStyle: true}),
			host: "127.0.0.1:7070", fast: true},
		{name: "path style, https, no port", opt: static(Options{Endpoint: "https://s3.example.net", Region: "eu-west-1", Bucket: "media", PathStyle: true}),
			host: "s3.example.net", fast: true},
		{name: "path style, endpoint with a path", opt: static(Options{Endpoint: "https://gw.example.net:8443/s3", Region: "us-east-1", Bucket: "media", PathStyle: true}),
			host: "gw.example.net:8443", fast: true},
		{name: "virtual host, https, port", opt: static(Options{Endpoint: "https://s3.example.net:8443", Region: "us-east-1", Bucket: "media"}),
			host: "media.s3.example.net:8443", fast: true},
		{name: "virtual host, http, no port", opt: static(Options{Endpoint: "http://s3.example.net", Region: "us-east-1", Bucket: "media"}),
			host: "media.s3.example.net", fast: true},
		{name: "virtual host, http, default port", opt: static(Options{Endpoint: "http://s3.example.net:80", Region: "us-east-1", Bucket: "media"}),
			host: "media.s3.example.net:80", fast: true},
		{name: "virtual host, dotted bucket, http", opt: static(Options{Endpoint: "http://s3.example.net", Region: "us-east-1", Bucket: "media.example"}),
			host: "media.example.s3.example.net", fast: true},
		{name: "virtual host, dotted bucket, https", opt: static(Options{Endpoint: "https://s3.example.net", Region: "us-east-1", Bucket: "media.example"}),
			host: "s3.example.net", fast: true},
		{name: "virtual host asked, IP endpoint", opt: static(Options{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", Bucket: "media"}),
			host: "127.0.0.1:7070", fast: true},
		{name: "AWS us-east-1", opt: static(Options{Region: "us-east-1", Bucket: "media"}),
			host: "media.s3.us-east-1.amazonaws.com", fast: true},
		{name: "AWS eu-central-1", opt: static(Options{Region: "eu-central-1", Bucket: "media"}),
			host: "media.s3.eu-central-1.amazonaws.com", fast: true},
		{name: "AWS aws-global", opt: static(Options{Region: "aws-global", Bucket: "media"}),
			host: "media.s3.amazonaws.com", fast: true},
		{name: "AWS China", opt: static(Options{Region: "cn-north-1", Bucket: "media"}),
			host: "media.s3.cn-north-1.amazonaws.com.cn", fast: true},
		{name: "AWS path style", opt: static(Options{Region: "us-west-2", Bucket: "media", PathStyle: true}),
			host: "s3.us-west-2.amazonaws.com", fast: true},
		{name: "AWS dotted bucket", opt: static(Options{Region: "us-east-1", Bucket: "media.example.net"}),
			host: "s3.us-east-1.amazonaws.com", fast: true},
		{name: "AWS FIPS", env: map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, opt: static(Options{Region: "us-east-1", Bucket: "media"}),
			host: "media.s3-fips.us-east-1.amazonaws.com", fast: true},
		{name: "AWS dual-stack", env: map[string]string{"AWS_USE_DUALSTACK_ENDPOINT": "true"}, opt: static(Options{Region: "us-east-1", Bucket: "media"}),
			host: "media.s3.dualstack.us-east-1.amazonaws.com", fast: true},
		{name: "AWS access point ARN", opt: static(Options{Region: "us-west-2", Bucket: "arn:aws:s3:us-west-2:123456789012:accesspoint/media"}),
			host: "media-123456789012.s3-accesspoint.us-west-2.amazonaws.com", fast: true},
		{name: "endpoint from the environment", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://minio.example.net:9000"},
			opt: static(Options{Region: "us-east-1", Bucket: "media", PathStyle: true}), host: "minio.example.net:9000", fast: true},
		{name: "session token from the environment",
			env: map[string]string{"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token/with+odd=chars"},
			opt: Options{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", Bucket: "media", PathStyle: true}, host: "127.0.0.1:7070", fast: true},
		{name: "prefix needing escapes", opt: static(Options{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", Bucket: "media", PathStyle: true,
			Prefix: "média/a b+c%20~*'()!$&,;=:@[]/"}), host: "127.0.0.1:7070", fast: true},
		{name: "virtual host, prefix with slashes", opt: static(Options{Region: "us-east-1", Bucket: "media", Prefix: "/a//b/"}),
			host: "media.s3.us-east-1.amazonaws.com", fast: true},
		// Directory buckets sign with session credentials from CreateSession.
		{name: "S3 Express", opt: static(Options{Region: "us-east-1", Bucket: "media--use1-az4--x-s3"}), fast: false},
		// Multi-region access points sign with SigV4a.
		{name: "multi-region access point", opt: static(Options{Region: "us-east-1", Bucket: "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap"}), fast: false},
		// Pseudo-regions are mapped by an SDK-internal function.
		{name: "FIPS pseudo-region", opt: static(Options{Region: "fips-us-gov-west-1", Bucket: "media"}), fast: false},
	}
	keys := []string{"k", "0123456789abcdef0123456789abcdef", "A-Z_a-z"}
	// Object keys beyond store.ValidKey, as a Prefix can make them.
	objKeys := []string{"a b", "ü/€/日本", "a+b", "100%", "a/b//c/", "/lead", "~*'()!$&,;=:@[]?#", "x%2Fy", "tab\there", strings.Repeat("long/", 200)}
	sizes := []int64{0, 1, 2_345_678, 1 << 40}
	types := []string{"", "image/jpeg", "text/plain; charset=utf-8", "  spaced   out  "}
	dispositions := []string{"", `inline; filename="a b+c.txt"`, "attachment; filename*=UTF-8''%C3%A4.txt"}
	ttls := []time.Duration{0, time.Second, 1500 * time.Millisecond, 5 * time.Minute, 7 * 24 * time.Hour}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			presignEnv(t, tc.env)
			s := mustNew(t, tc.opt)
			if (s.fast != nil) != tc.fast {
				t.Fatalf("fast presigner in use: %v, want %v", s.fast != nil, tc.fast)
			}
			if s.fast == nil {
				return
			}
			if _, ok := s.fast.creds.(*aws.CredentialsCache); !ok {
				t.Errorf("credentials provider %T is not cached: every URL would fetch credentials", s.fast.creds)
			}
			ctx := context.Background()
			ref := s3.NewPresignClient(s.client) // the Store's client, as New configured it
			var n int
			check := func(what, want string, err error, got func() (string, error)) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: SDK: %v", what, err)
				}
				if err := s.fast.pinClock(want); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				g, err := got()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if g != want {
					t.Fatalf("%s:\n got %s\nwant %s", what, g, want)
				}
				if n++; n == 1 && !strings.Contains(want, "://"+tc.host+"/") {
					t.Errorf("URL %s is not on host %s", want, tc.host)
				}
			}
			for _, key := range keys {
				for _, size := range sizes {
					for _, ct := range types {
						for _, ttl := range ttls {
							want, err := presignPutSDK(ctx, ref, s.bucket, s.incomingKey(key), size, ct, ttl)
							check("PUT "+key, want, err, func() (string, error) {
								u, h, err := s.PresignPut(ctx, key, size, ct, ttl)
								if err == nil && h.Get("Content-Type") != ct {
									t.Errorf("PUT %s: headers %v for type %q", key, h, ct)
								}
								return u, err
							})
						}
					}
				}
				for _, ct := range types {
					for _, cd := range dispositions {
						for _, ttl := range ttls {
							want, err := presignGetSDK(ctx, ref, s.bucket, tc.opt.Prefix+key, ttl, ct, cd)
							check("GET "+key, want, err, func() (string, error) { return s.PresignGet(ctx, key, ttl, ct, cd) })
						}
					}
				}
			}
			for _, k := range objKeys {
				want, err := presignPutSDK(ctx, ref, s.bucket, k, 42, "image/png", time.Minute)
				check("PUT "+k, want, err, func() (string, error) { return s.fast.presignPut(ctx, k, 42, "image/png", time.Minute) })
				want, err = presignGetSDK(ctx, ref, s.bucket, k, time.Minute, "image/png", "inline")
				check("GET "+k, want, err, func() (string, error) { return s.fast.presignGet(ctx, k, time.Minute, "image/png", "inline") })
			}
			if _, _, err := s.PresignPut(ctx, "k", 1, "", -time.Second); err == nil {
				t.Error("PresignPut accepted a negative ttl")
			}
			if _, err := presignPutSDK(ctx, ref, s.bucket, "k", 1, "", -time.Second); err == nil {
				t.Error("the SDK accepted a negative ttl: the presigner refuses it")
			}
		})
	}
}

// New's probe must catch a presigner that drifts from the SDK, or it would
// not protect configurations the table above does not list.
func TestPresignProbeCatchesDrift(t *testing.T) {
	presignEnv(t, nil)
	s := mustNew(t, Options{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", Bucket: "media", PathStyle: true, AccessKeyID: "ak", SecretAccessKey: "sk"})
	if s.fast == nil {
		t.Fatal("no fast presigner for a plain path-style endpoint")
	}
	for name, drift := range map[string]func(*presigner){
		"signing region": func(p *presigner) { p.signingRegion = "eu-west-1" },
		"host":           func(p *presigner) { p.host = "127.0.0.1:7071" },
		"path":           func(p *presigner) { p.path, p.rawPath = "/other", "/other" },
		"unescaped path": func(p *presigner) { p.rawPath = "" },
		"path escaping":  func(p *presigner) { p.signer = v4.NewSigner() },
	} {
		p := *s.fast
		drift(&p)
		if p.matchesSDK(t.Context(), s.client, s.bucket) {
			t.Errorf("%s: the probe did not notice", name)
		}
	}
}

// BenchmarkPresignPut is the cost of a slot's PUT URL, which in S3 mode is
// most of what mediaslot spends per slot; "sdk" is the presign client the
// presigner replaces, under the same load.
func BenchmarkPresignPut(b *testing.B) {
	s, err := New(context.Background(), Options{
		Endpoint: "http://127.0.0.1:9", Region: "us-east-1", Bucket: "mediaslot",
		AccessKeyID: "bench", SecretAccessKey: "benchsecretkey123", PathStyle: true, Prefix: "m/",
	})
	if err != nil {
		b.Fatal(err)
	}
	if s.fast == nil {
		b.Fatal("no fast presigner")
	}
	ctx := context.Background()
	const key = "0123456789abcdef0123456789abcdef"
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := s.PresignPut(ctx, key, 2_345_678, "image/jpeg", 5*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := presignPutSDK(ctx, s.presign, s.bucket, s.prefix+key, 2_345_678, "image/jpeg", 5*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
