-- Generated from the open profile by scripts/render-guide-sql; do not edit by hand.
-- Lets clients use user ids that do not exist in auth.users.
alter table "public"."sessions" drop constraint if exists "sessions_user_id_fkey";
