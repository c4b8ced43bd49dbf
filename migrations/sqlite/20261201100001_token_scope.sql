-- API tokens are `write` (all their user may do) or `read` (GET only).
-- Keep in step with ../mysql/20261201100001_token_scope.sql.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write';
