"""One module per resource of the supabase-access provider, named after it."""
