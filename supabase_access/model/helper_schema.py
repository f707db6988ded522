"""The schema of the functions the policies call: which groups the current user belongs to (the policies of
group rows; SECURITY DEFINER, so a membership table's policies can ask about itself) and the caller's id
(the policies of owner buckets). Not exposed to the Data API."""

HELPER_SCHEMA = "supabase_access_rls"
