"""nodedrop scheduler service."""
