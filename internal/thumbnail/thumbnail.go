// Package thumbnail makes the small previews media messages carry inline
// (XEP-0264 thumbnails as XEP-0231 data): a PNG of a few kilobytes, made
// from a JPEG, PNG, GIF or WebP image, for the client and for the relay.
package thumbnail

import (
	"bytes"
	"crypto/sha1" // #nosec G505 -- XEP-0231 cids are SHA-1
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color/palette"
	_ "image/gif" // decoders for image.Decode
	_ "image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

const (
	// MaxBytes is XEP-0231's SHOULD for inline data: larger stanzas risk
	// the server's stanza size limit.
	MaxBytes = 8 << 10
	// maxPixels guards against decompression bombs: a tiny file can claim
	// enormous dimensions, and decoding allocates 4 bytes per pixel.
	maxPixels = 64 << 20
)

// Thumbnail is a small preview (XEP-0264) carried as XEP-0231 data.
type Thumbnail struct {
	Data          []byte
	MediaType     string // image/png for the ones Make makes
	Width, Height int    // as announced; receivers must not trust them for allocation
}

// CID is the XEP-0231 content id of the thumbnail: sha1+<hex>@bob.xmpp.org.
func (t Thumbnail) CID() string {
	sum := sha1.Sum(t.Data) // #nosec G401 -- XEP-0231 names data by SHA-1; not a security use
	return "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"
}

// Size returns the dimensions of an image in a format Go decodes (PNG,
// JPEG, GIF, WebP) without decoding the pixels.
func Size(r io.Reader) (width, height int, err error) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return 0, 0, err
	}
	return cfg.Width, cfg.Height, nil
}

// Make decodes an image and returns a PNG preview at most maxSide pixels on
// each side and MaxBytes long. Photos rarely fit 8 KB as full-colour PNG
// at 96 px, so it falls back to a 216-colour palette and then to smaller
// sides until the PNG fits. Images over 64 megapixels are refused before
// decoding (decompression bombs).
func Make(r io.Reader, maxSide int) (Thumbnail, error) {
	var buf bytes.Buffer
	cfg, _, err := image.DecodeConfig(io.TeeReader(r, &buf))
	if err != nil {
		return Thumbnail{}, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return Thumbnail{}, fmt.Errorf("image of %dx%d pixels: not making a thumbnail", cfg.Width, cfg.Height)
	}
	src, _, err := image.Decode(io.MultiReader(&buf, r))
	if err != nil {
		return Thumbnail{}, err
	}
	for side := maxSide; side >= 8; side = side * 3 / 4 {
		scaled := scale(src, side)
		for _, img := range []image.Image{scaled, toPalette(scaled)} {
			var out bytes.Buffer
			enc := png.Encoder{CompressionLevel: png.BestCompression}
			if err := enc.Encode(&out, img); err != nil {
				return Thumbnail{}, err
			}
			if out.Len() <= MaxBytes {
				b := img.Bounds()
				return Thumbnail{Data: out.Bytes(), MediaType: "image/png", Width: b.Dx(), Height: b.Dy()}, nil
			}
		}
	}
	return Thumbnail{}, errors.New("no thumbnail fits in 8 KB") // unreachable: 8x8 paletted is < 1 KB
}

// scale fits src into side×side, keeping its aspect ratio, never enlarging.
func scale(src image.Image, side int) *image.RGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > side || h > side {
		if w >= h {
			w, h = side, max(1, h*side/w)
		} else {
			w, h = max(1, w*side/h), side
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// toPalette maps img to the 216-colour web-safe palette:
// one byte per pixel instead of four, with no dithering noise to hurt the
// compression.
func toPalette(img *image.RGBA) *image.Paletted {
	p := image.NewPaletted(img.Bounds(), palette.WebSafe)
	draw.Draw(p, p.Bounds(), img, img.Bounds().Min, draw.Src)
	return p
}
