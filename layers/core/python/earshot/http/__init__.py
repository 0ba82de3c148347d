"""The HTTP contract: API Gateway v2 events in, responses and the error envelope out."""
