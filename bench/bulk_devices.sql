-- Bulk-load devices bench-:first .. bench-:last into the DEFAULT tenant, row for row what
-- `patchgate device import` writes for a CSV line "bench-i,,demo-gw-1,1.0.0" (no groups, so
-- no device_groups rows): hardware, installed version, empty attributes and groups, config
-- requested, no auto-confirm, never seen. The only difference: each token hash is the
-- SHA-256 of a random UUID nobody keeps (import prints its tokens once), so these devices
-- poll with the tenant's gateway token, as the benchmark does.
-- usage: psql URL -v first=1000 -v last=999999 -f bench/bulk_devices.sql
INSERT INTO devices (tenant_id, controller_id, token_hash, hardware, installed_version,
                     attributes, registered_at, last_seen, group_names, open_action_id,
                     installed_action_id, config_requested, auto_confirm)
SELECT t.id, 'bench-' || g, encode(sha256(gen_random_uuid()::text::bytea), 'hex'),
       'demo-gw-1', '1.0.0', '{}'::json, now(), NULL, '[]'::json, NULL, NULL, true, false
FROM generate_series(:first, :last) AS g, tenants AS t
WHERE t.name = 'DEFAULT';
ANALYZE devices;
