-- +goose Up
-- The person's groups at login (identity groups: access policy, rooms).
ALTER TABLE sessions ADD COLUMN groups text[]; -- NULL: the source does not say

-- +goose Down
ALTER TABLE sessions DROP COLUMN groups;
