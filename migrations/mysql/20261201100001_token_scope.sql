-- API tokens are `write` (all their user may do) or `read` (GET only).
-- Keep in step with ../sqlite/20261201100001_token_scope.sql.
ALTER TABLE api_tokens ADD COLUMN scope VARCHAR(16) NOT NULL DEFAULT 'write';
