"""How fast the diagnostics tests' servers are read: rates over a short window (they scrape
every second) instead of production's 5m."""

from __future__ import annotations

# Rates need two samples in their window: with a 1 s scrape, 20 s holds plenty.
QUERY_WINDOW = "20s"
# Redis memory growth: two INFO samples this far apart (production: 10 s).
REDIS_GROWTH_SAMPLE_S = 1
