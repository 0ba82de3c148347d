"""Adapters: the only modules that touch sqlite3, the filesystem layout, boto3 or httpx."""
