-- Generated from the open profile by scripts/render-guide-sql; do not edit by hand.
-- Lets every visitor, anonymous or signed in, use the app's tables.
begin;

-- sessions
alter table "public"."sessions" enable row level security;
do $$ declare p record; begin for p in select policyname from pg_policies where schemaname = 'public' and tablename = 'sessions' loop execute format('drop policy %I on %I.%I', p.policyname, 'public', 'sessions'); end loop; end $$;
create policy "sessions_select_open" on "public"."sessions" as permissive for select to "anon", "authenticated"
  using (true);
create policy "sessions_insert_open" on "public"."sessions" as permissive for insert to "anon", "authenticated"
  with check (true);
create policy "sessions_update_open" on "public"."sessions" as permissive for update to "anon", "authenticated"
  using (true)
  with check (true);
create policy "sessions_delete_open" on "public"."sessions" as permissive for delete to "anon", "authenticated"
  using (true);

-- segments
alter table "public"."segments" enable row level security;
do $$ declare p record; begin for p in select policyname from pg_policies where schemaname = 'public' and tablename = 'segments' loop execute format('drop policy %I on %I.%I', p.policyname, 'public', 'segments'); end loop; end $$;
create policy "segments_select_open" on "public"."segments" as permissive for select to "anon", "authenticated"
  using (true);
create policy "segments_insert_open" on "public"."segments" as permissive for insert to "anon", "authenticated"
  with check (true);
create policy "segments_update_open" on "public"."segments" as permissive for update to "anon", "authenticated"
  using (true)
  with check (true);
create policy "segments_delete_open" on "public"."segments" as permissive for delete to "anon", "authenticated"
  using (true);

-- turns
alter table "public"."turns" enable row level security;
do $$ declare p record; begin for p in select policyname from pg_policies where schemaname = 'public' and tablename = 'turns' loop execute format('drop policy %I on %I.%I', p.policyname, 'public', 'turns'); end loop; end $$;
create policy "turns_select_open" on "public"."turns" as permissive for select to "anon", "authenticated"
  using (true);
create policy "turns_insert_open" on "public"."turns" as permissive for insert to "anon", "authenticated"
  with check (true);
create policy "turns_update_open" on "public"."turns" as permissive for update to "anon", "authenticated"
  using (true)
  with check (true);
create policy "turns_delete_open" on "public"."turns" as permissive for delete to "anon", "authenticated"
  using (true);

-- actions
alter table "public"."actions" enable row level security;
do $$ declare p record; begin for p in select policyname from pg_policies where schemaname = 'public' and tablename = 'actions' loop execute format('drop policy %I on %I.%I', p.policyname, 'public', 'actions'); end loop; end $$;
create policy "actions_select_open" on "public"."actions" as permissive for select to "anon", "authenticated"
  using (true);
create policy "actions_insert_open" on "public"."actions" as permissive for insert to "anon", "authenticated"
  with check (true);
create policy "actions_update_open" on "public"."actions" as permissive for update to "anon", "authenticated"
  using (true)
  with check (true);
create policy "actions_delete_open" on "public"."actions" as permissive for delete to "anon", "authenticated"
  using (true);

-- generated_content
alter table "public"."generated_content" enable row level security;
do $$ declare p record; begin for p in select policyname from pg_policies where schemaname = 'public' and tablename = 'generated_content' loop execute format('drop policy %I on %I.%I', p.policyname, 'public', 'generated_content'); end loop; end $$;
create policy "generated_content_select_open" on "public"."generated_content" as permissive for select to "anon", "authenticated"
  using (true);
create policy "generated_content_insert_open" on "public"."generated_content" as permissive for insert to "anon", "authenticated"
  with check (true);
create policy "generated_content_update_open" on "public"."generated_content" as permissive for update to "anon", "authenticated"
  using (true)
  with check (true);
create policy "generated_content_delete_open" on "public"."generated_content" as permissive for delete to "anon", "authenticated"
  using (true);

revoke all on table "public"."sessions", "public"."segments", "public"."turns", "public"."actions", "public"."generated_content" from "anon";
grant select, insert, update, delete on table "public"."sessions", "public"."segments", "public"."turns", "public"."actions", "public"."generated_content" to "anon";

revoke all on table "public"."sessions", "public"."segments", "public"."turns", "public"."actions", "public"."generated_content" from "authenticated";
grant select, insert, update, delete on table "public"."sessions", "public"."segments", "public"."turns", "public"."actions", "public"."generated_content" to "authenticated";

revoke all on table "public"."sessions", "public"."segments", "public"."turns", "public"."actions", "public"."generated_content" from "service_role";
grant select, insert, update, delete on table "public"."sessions", "public"."segments", "public"."turns", "public"."actions", "public"."generated_content" to "service_role";
commit;
