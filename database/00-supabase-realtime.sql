-- Realtime's part of a Supabase project's database: the `supabase_realtime` publication (Postgres
-- Changes) and `realtime.messages` with `realtime.topic()` (Realtime Authorization of private
-- Broadcast and Presence channels). Realtime's own migrations are Elixir (supabase/realtime) and are
-- not in ../shared/supabase-platform; this stand-in follows the documented definition and a hosted
-- project's catalog (tests/db/test_realtime_schema.py checks it against that, item by item).
-- Applied by scripts/localdb as supabase_admin, after 00-supabase-platform.sql. Safe to rerun.

do $$
begin
  if not exists (select from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin;
  end if;
end
$$;
alter role supabase_realtime_admin nologin noinherit nobypassrls;

-- Supabase's init script creates the publication empty; postgres owns it, so the dashboard (and this
-- project) add and remove a project's tables as postgres. (Without logical WAL PostgreSQL warns at
-- creation; no subscriber reads it here.)
set local client_min_messages = error;
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime owner to postgres;
reset client_min_messages;

create schema if not exists realtime authorization supabase_realtime_admin;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

-- Partitioned by day on Supabase (Realtime creates messages_YYYY_MM_DD ahead of time); one default
-- partition here, so inserts work whatever the date. Partitions give the API roles nothing.
create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  id uuid not null default gen_random_uuid(),
  primary key (id, inserted_at)
) partition by range (inserted_at);
create table if not exists realtime.messages_default partition of realtime.messages default;
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages_default owner to supabase_realtime_admin;
create index if not exists messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages enable row level security;

grant all on realtime.messages to postgres;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;
grant all on realtime.messages_default to postgres;

-- The channel topic a client joins: Realtime sets `realtime.topic` (with the role and the JWT claims)
-- before it asks the policies whether the join may receive (SELECT) and send (INSERT).
create or replace function realtime.topic() returns text
language sql stable
as $$
select nullif(current_setting('realtime.topic', true), '')::text;
$$;
alter function realtime.topic() owner to supabase_realtime_admin;

-- On Supabase, supautils' policy_grants let postgres create and drop policies on realtime.messages
-- without owning it; plain PostgreSQL has no such grant, so postgres is a member of the owner here
-- (an allowed difference, named in tests/db/test_realtime_schema.py).
grant supabase_realtime_admin to postgres;
