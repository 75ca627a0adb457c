"""nodedrop api service."""
