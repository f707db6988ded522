-- The legacy platform (Supabase before 2026-10-30, or a project that kept "Default privileges for
-- new entities" on): the API roles reach every new table, sequence and function postgres creates
-- in public, so row-level security is what actually protects the data. Applied by
-- scripts/localdb after 00-supabase-platform.sql when SUPABASE_ACCESS_PLATFORM=legacy, and always
-- to the template database supabase_template_legacy.
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
