"""Use cases: onboarding, sync, notifications, subscriptions, close, reconciliation."""
