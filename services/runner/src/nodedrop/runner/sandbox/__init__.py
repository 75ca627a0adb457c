"""The sandbox of ``code`` nodes: user Python in a bubblewrap jail (docs/security.md)."""
