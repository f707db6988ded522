-- A stand-in for the `storage` schema Supabase Storage's own migrations build (run by Storage as
-- supabase_storage_admin; ../shared/supabase-platform/storage/). Only what access depends on: the
-- buckets and objects tables with the columns the API and policies use, RLS on both, the helper
-- functions policies call (foldername, filename, extension), the grants Storage gives, and its guard
-- against direct deletes. tests/platform/test_stand_in_conformance.py checks every one of these
-- against a database built from Storage's migrations. Applied by scripts/localdb as supabase_admin.

do $$
begin
  if not exists (select from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit createrole;
  end if;
end
$$;

create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;

set role supabase_storage_admin;

create table if not exists storage.buckets (
  id text primary key,
  name text not null,
  owner uuid,
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[]
);
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  user_metadata jsonb
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

-- The folders of an object's path (every segment but the last): 'a/b/c.png' -> {a,b}.
create or replace function storage.foldername(name text) returns text[]
language sql immutable
as $$ select (string_to_array(name, '/'))[1 : array_length(string_to_array(name, '/'), 1) - 1] $$;

-- The last segment of the path.
create or replace function storage.filename(name text) returns text
language sql immutable
as $$ select (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)] $$;

-- What follows the last dot of the file name.
create or replace function storage.extension(name text) returns text
language sql immutable
as $$ select reverse(split_part(reverse(storage.filename(name)), '.', 1)) $$;

-- Storage refuses DELETE on its tables unless its API says so (storage.allow_delete_query), so a
-- stray `delete from storage.objects` cannot orphan the files behind the rows.
create or replace function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using errcode = '42501';
  end if;
  return null;
end
$$;
drop trigger if exists protect_buckets_delete on storage.buckets;
create trigger protect_buckets_delete before delete on storage.buckets
  for each statement execute function storage.protect_delete();
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete before delete on storage.objects
  for each statement execute function storage.protect_delete();

-- Storage's grants: the API acts as the caller's role, so RLS alone decides (0046); postgres may
-- pass them on (0049).
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
grant all on storage.buckets, storage.objects to postgres with grant option;
grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
  to postgres, anon, authenticated, service_role;

reset role;

-- Supabase lets postgres create, alter and drop policies on storage.objects and storage.buckets without
-- owning them (supautils.policy_grants, a server setting plain PostgreSQL lacks). The stand-in gives
-- the same through membership of the tables' owner, as Supabase did before 2025-04
-- (20220609081115_grant-supabase-auth-admin-and-supabase-storage-admin-to-postgres). supabase-access
-- uses it for policies and bucket rows only, never to alter the tables.
grant supabase_storage_admin to postgres;
