"""Services: the product's behaviour. They take ports and plain values, and return models."""
