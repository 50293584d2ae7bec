-- Unread counts without scans: nseq counts a room's notifying events
-- (messages, encrypted events, stickers) up to and including each event.
ALTER TABLE events ADD COLUMN nseq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_sender ON events(room_id, sender, stream_pos);
