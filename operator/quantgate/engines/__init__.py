"""In-process inference engines the runner can use instead of an HTTP endpoint."""
