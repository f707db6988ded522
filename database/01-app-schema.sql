-- The app's tables. Created as postgres so postgres owns them, as in a Supabase project,
-- and so Supabase's default privileges for postgres grant them to the API roles.
set role postgres;

create table sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  title text,
  created_at timestamptz not null default now(),
  constraint sessions_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade
);

create table segments (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references sessions on delete cascade,
  position int not null,
  title text,
  created_at timestamptz not null default now()
);

create table turns (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references sessions on delete cascade,
  segment_id uuid references segments on delete set null,
  speaker text not null,
  content text,
  created_at timestamptz not null default now()
);

create table actions (
  id uuid primary key default gen_random_uuid(),
  turn_id uuid not null references turns on delete cascade,
  kind text not null,
  payload jsonb,
  created_at timestamptz not null default now()
);

create table generated_content (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references sessions on delete cascade,
  kind text not null,
  body text,
  created_at timestamptz not null default now()
);

-- Foreign keys and policy columns are indexed: cascades and RLS lookups use them.
create index sessions_user_id_idx on sessions (user_id);
create index segments_session_id_idx on segments (session_id);
create index turns_session_id_idx on turns (session_id);
create index turns_segment_id_idx on turns (segment_id);
create index actions_turn_id_idx on actions (turn_id);
create index generated_content_session_id_idx on generated_content (session_id);

reset role;
