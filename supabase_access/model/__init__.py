"""The pure model: tables and how rows are owned, profiles, policies as data, stack settings. No Pulumi, no database."""
