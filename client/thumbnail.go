package client

import (
	"io"

	"mediaslot/internal/thumbnail"
)

const (
	// ThumbnailMaxSide bounds the width and height of the thumbnails send makes.
	ThumbnailMaxSide = 96
	// ThumbnailMaxBytes bounds their size (XEP-0231's SHOULD for inline data).
	ThumbnailMaxBytes = thumbnail.MaxBytes
)

// Thumbnail is a small preview (XEP-0264) carried as XEP-0231 data.
type Thumbnail = thumbnail.Thumbnail

// ImageSize returns the dimensions of a PNG, JPEG, GIF or WebP image
// without decoding its pixels.
func ImageSize(r io.Reader) (width, height int, err error) { return thumbnail.Size(r) }

// MakeThumbnail makes the preview send embeds: a PNG at most
// ThumbnailMaxSide pixels on a side and ThumbnailMaxBytes long.
func MakeThumbnail(r io.Reader) (Thumbnail, error) { return thumbnail.Make(r, ThumbnailMaxSide) }
