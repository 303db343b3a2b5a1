package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// object is the io.ReadSeekCloser that Open returns. Seek only moves the
// offset; Read opens a GetObject stream from the offset when there is none,
// and a Seek that moves the offset closes it. So http.ServeContent, which
// seeks to the end to learn the size, back to the start and then to a Range
// start, costs one request per range actually read.
type object struct {
	ctx    context.Context
	s      *Store
	key    string  // store key, for error messages
	objKey *string // key in the bucket
	size   int64
	off    int64
	body   io.ReadCloser // stream positioned at off, or nil
	closed bool
}

var errClosed = errors.New("s3: read of closed object")

func (o *object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, errClosed
	}
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		in := &s3.GetObjectInput{Bucket: &o.s.bucket, Key: o.objKey}
		if o.off > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", o.off))
		}
		out, err := o.s.client.GetObject(o.ctx, in)
		if err != nil {
			return 0, o.s.opError("get", o.key, err)
		}
		o.body = out.Body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if err == io.EOF && o.off < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, errClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.size
	default:
		return 0, fmt.Errorf("s3: seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("s3: seek to negative offset %d", offset)
	}
	if offset != o.off {
		o.closeBody()
		o.off = offset
	}
	return offset, nil
}

func (o *object) Close() error {
	if o.closed {
		return errClosed
	}
	o.closed = true
	return o.closeBody()
}

func (o *object) closeBody() error {
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}
