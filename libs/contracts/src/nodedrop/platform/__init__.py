"""nodedrop's platform layer: the adapters to what runs beside the services (NATS JetStream,
its key-value buckets and object store, PostgreSQL, OpenTelemetry), their authentication, the
settings read from the environment, logging and process lifecycle. The model they carry is in
:mod:`nodedrop.contracts`, which imports nothing from here."""
