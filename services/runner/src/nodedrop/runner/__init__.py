"""nodedrop runner service."""
