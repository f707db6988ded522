"""Everything that speaks SQL: statements, catalog reads, the connections and the one write-transaction helper."""
