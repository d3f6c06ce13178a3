"""PostgreSQL: models, engine, the embedded server and the migration runner."""
