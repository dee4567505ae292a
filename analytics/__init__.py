"""Sales analytics: rollup tables kept current by ingest and the stream, queries, Redis cache (seed §2.2)."""
