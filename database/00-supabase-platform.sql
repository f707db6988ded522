-- What a Supabase project's database already provides before any app migration:
-- the API roles, the auth schema with auth.users and the JWT helper functions, and
-- Supabase's grants on schema public. Applied by scripts/localdb as supabase_admin
-- (superuser). Safe to rerun; roles are cluster-wide, so they are created only if missing.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator;
  end if;
  if not exists (select from pg_roles where rolname = 'postgres') then
    create role postgres;
  end if;
end
$$;

-- Attributes are (re)asserted so a role left over from an older run matches. INHERIT, as Supabase's
-- 20230529180330_alter_api_roles_for_inherit (tests/platform checks these against Supabase's SQL).
alter role anon nologin inherit nobypassrls;
alter role authenticated nologin inherit nobypassrls;
alter role service_role nologin inherit bypassrls;
-- PostgREST logs in as authenticator and switches to one of the API roles per request.
alter role authenticator login noinherit nobypassrls password 'sa-local-pw-7d3f9b2c';
grant anon, authenticated, service_role to authenticator;
-- As on Supabase, postgres is not a superuser: it owns the app tables and administers the API roles.
-- Supabase's postgres also has BYPASSRLS; this one has not, so the tests here run without it and the
-- platform tier (tests/platform, on Supabase's own SQL) with it.
alter role postgres login createrole nosuperuser nobypassrls password 'sa-local-pw-7d3f9b2c';
grant anon, authenticated, service_role to postgres with admin option;

-- Lets postgres create schemas in this database, as on Supabase.
do $$
begin
  execute format('grant all on database %I to postgres', current_database());
end
$$;

-- auth schema: owned by the platform, not by postgres.
create schema if not exists auth;

create table if not exists auth.users (
  id uuid primary key,
  email varchar(255),
  is_anonymous boolean not null default false,
  created_at timestamptz not null default now()
);

-- The sub claim of the request's JWT; NULL when there is no JWT or no sub.
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select nullif(
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    ),
    ''
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant usage on schema auth to anon, authenticated, service_role, postgres;
grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;
-- The API roles must never read auth.users; postgres manages users and references them.
revoke all on auth.users from anon, authenticated;
grant select, insert, update, delete, references on auth.users to postgres;

-- Schema public belongs to postgres; the API roles may use it. Whether they reach what postgres
-- creates there is the grant platform's choice (database/platforms/, picked by scripts/localdb).
alter schema public owner to postgres;
grant usage on schema public to anon, authenticated, service_role;
