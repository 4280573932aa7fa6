"""What every runtime service shares: settings base, auth, the app shell, Redis, tracing."""
