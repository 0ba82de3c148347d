"""The client side of Earshot: ``earshot transcribe|understand|extract|tasks|usage`` against any deployment."""
