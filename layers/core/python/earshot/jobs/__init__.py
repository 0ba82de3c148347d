"""Processing requests as jobs: one definition per kind serves the sync path and the async workflow."""
