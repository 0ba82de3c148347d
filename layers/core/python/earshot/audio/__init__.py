"""Audio in: decoding uploads into the PCM the embedded engines read."""
