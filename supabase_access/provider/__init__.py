"""The supabase-access resource provider: a Pulumi plugin in Python (no pickled code in state)."""
