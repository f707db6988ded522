-- Baseline access: row-level security on every app table, and policies that let only
-- signed-in users (role authenticated) reach their own rows. Requests without a JWT
-- (role anon) match no policy, which produces the guide's
-- 'new row violates row-level security policy' error.
-- auth.uid() is wrapped in a select so it is evaluated once per statement, not per row.
set role postgres;

alter table sessions enable row level security;
alter table segments enable row level security;
alter table turns enable row level security;
alter table actions enable row level security;
alter table generated_content enable row level security;

create policy sessions_select_own on sessions for select to authenticated
  using (user_id = (select auth.uid()));
create policy sessions_insert_own on sessions for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy sessions_update_own on sessions for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy sessions_delete_own on sessions for delete to authenticated
  using (user_id = (select auth.uid()));

-- segments: a segment belongs to whoever owns its session.
create policy segments_select_own on segments for select to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy segments_insert_own on segments for insert to authenticated
  with check (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy segments_update_own on segments for update to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())))
  with check (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy segments_delete_own on segments for delete to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())));

-- turns: a turn belongs to whoever owns its session.
create policy turns_select_own on turns for select to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy turns_insert_own on turns for insert to authenticated
  with check (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy turns_update_own on turns for update to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())))
  with check (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy turns_delete_own on turns for delete to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())));

-- generated_content: generated content belongs to whoever owns its session.
create policy generated_content_select_own on generated_content for select to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy generated_content_insert_own on generated_content for insert to authenticated
  with check (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy generated_content_update_own on generated_content for update to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())))
  with check (session_id in (select id from sessions where user_id = (select auth.uid())));
create policy generated_content_delete_own on generated_content for delete to authenticated
  using (session_id in (select id from sessions where user_id = (select auth.uid())));

-- actions: an action belongs to whoever owns its turn's session.
create policy actions_select_own on actions for select to authenticated
  using (turn_id in (select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = (select auth.uid())));
create policy actions_insert_own on actions for insert to authenticated
  with check (turn_id in (select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = (select auth.uid())));
create policy actions_update_own on actions for update to authenticated
  using (turn_id in (select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = (select auth.uid())))
  with check (turn_id in (select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = (select auth.uid())));
create policy actions_delete_own on actions for delete to authenticated
  using (turn_id in (select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = (select auth.uid())));

reset role;
