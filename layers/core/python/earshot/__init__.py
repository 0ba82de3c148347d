"""Earshot: a serverless audio-AI API (transcribe, understand, extract), metered and billed per second."""

from __future__ import annotations

__version__ = "0.1.0"
