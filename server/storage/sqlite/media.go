package sqlite

import (
	"context"
	"fmt"

	"myelin/server/storage"
)

// PutMedia implements storage.MediaStore.
func (s *Store) PutMedia(ctx context.Context, m storage.Media) error {
	return s.Write(ctx, func(t *Tx) error {
		_, err := t.Exec(`INSERT INTO media(media_id, content_type, filename, size, uploader, created_ts) VALUES(?,?,?,?,?,?)`,
			m.MediaID, m.ContentType, m.Filename, m.Size, m.Uploader, m.CreatedTS)
		if isUnique(err) {
			return storage.ErrExists
		}
		if err != nil {
			return fmt.Errorf("sqlite: put media: %w", err)
		}
		return nil
	})
}

// Media implements storage.MediaStore.
func (s *Store) Media(ctx context.Context, mediaID string) (storage.Media, error) {
	m := storage.Media{MediaID: mediaID}
	err := s.rq.QueryRowContext(ctx, `SELECT content_type, filename, size, uploader, created_ts FROM media WHERE media_id=?`, mediaID).
		Scan(&m.ContentType, &m.Filename, &m.Size, &m.Uploader, &m.CreatedTS)
	return m, notFound(err)
}
