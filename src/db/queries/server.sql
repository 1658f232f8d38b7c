-- The server itself, for diagnose() (src/diagnose.ts, printed by `rota doctor`).

-- name: Version
select current_setting('server_version') as server_version;
