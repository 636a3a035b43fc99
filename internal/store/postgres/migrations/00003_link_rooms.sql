-- +goose Up
-- The rooms sync's record of each person (store.Link.Rooms,
-- store.EncodeRooms: JSON, '' when it never ran).
ALTER TABLE links ADD COLUMN rooms text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE links DROP COLUMN rooms;
