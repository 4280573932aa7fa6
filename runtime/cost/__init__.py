"""The cost engine: prices, usage ledger, budgets, limits, model routing and spend reports."""
