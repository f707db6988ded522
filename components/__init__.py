"""Pulumi components and the typed resource classes of the supabase-access provider."""
