"""The PostgreSQL schema shared by the notifier (writes the projection) and the api (reads it,
and owns the workflow tables). Install with the ``db`` extra."""
