"""Engines: the models behind the catalog's SKUs (embedded engines and upstream providers)."""
