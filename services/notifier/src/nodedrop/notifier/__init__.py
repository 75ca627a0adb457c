"""nodedrop notifier service."""
