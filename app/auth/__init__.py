"""API keys with scopes: storage (hashed with argon2), verification with a short cache, FastAPI dependencies."""
