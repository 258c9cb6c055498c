"""Endpoint configurations and real-time endpoints: services, controller and deployment."""
