"""Provider layer: transport, retries, auth and streaming for each LLM API."""
