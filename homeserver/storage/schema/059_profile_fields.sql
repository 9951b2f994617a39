-- Extended profile fields (spec v1.16, MSC4133): m.tz and custom namespaced keys, one row
-- per (user, key), the value as canonical JSON. displayname and avatar_url stay on users.
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    field_name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, field_name)
);
