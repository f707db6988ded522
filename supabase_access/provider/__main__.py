from supabase_access.provider.server import main

main()
