"""The Supabase Management API client (auth settings over HTTP)."""
