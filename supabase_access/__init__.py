"""supabase-access: Supabase access rules as code."""
