"""Batch transform: CreateTransformJob and friends, the controller that runs them, and the
record splitting, batching, filtering and joining they need."""
