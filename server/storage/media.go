package storage

import "context"

// Media is the metadata of one uploaded file (the bytes are kept by the
// HTTP layer's media directory).
type Media struct {
	MediaID     string
	ContentType string
	Filename    string
	Size        int64
	Uploader    string
	CreatedTS   int64
}

// MediaStore stores media metadata.
type MediaStore interface {
	// PutMedia records an upload whose bytes are already durable.
	PutMedia(ctx context.Context, m Media) error
	// Media returns the metadata of an upload, or ErrNotFound.
	Media(ctx context.Context, mediaID string) (Media, error)
}
