"""Importing n8n workflows: their JSON export converted to nodedrop definitions (pure), with a
report of what did not map. ``nodedrop workflows import-n8n`` does the reading and saving."""

from nodedrop.cli.n8n.workflow import Conversion, convert_n8n

__all__ = ["Conversion", "convert_n8n"]
