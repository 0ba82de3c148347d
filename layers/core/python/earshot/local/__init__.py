"""Local mode: the same Lambda handlers behind a real HTTP server, on embedded defaults."""
