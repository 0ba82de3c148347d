"""Fakes for the integration suite: real servers on loopback standing in for the services Earshot calls."""
