"""Asynchronous inference: InvokeEndpointAsync requests kept in a durable queue and answered
by objects in S3."""
