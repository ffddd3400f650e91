"""Running the portal for real: health checks, configuration checks, structured logs."""
