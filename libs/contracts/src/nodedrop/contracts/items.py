"""The data that flows between nodes (docs/nodes.md, "Data between nodes")."""

from typing import Any

#: One item: a JSON object.
Item = dict[str, Any]
#: A node's input or output: items per port, e.g. ``{"main": [{...}, {...}]}``.
PortItems = dict[str, list[Item]]

MAIN_PORT = "main"
ERROR_PORT = "error"

#: Reserved item key of a reference to items kept in the object store (see
#: ``nodedrop.platform.datastore``): only runners may produce it.
REF_KEY = "$nodedrop_ref"
