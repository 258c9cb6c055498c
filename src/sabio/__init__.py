"""Sabio: a self-hosted machine-learning platform that speaks SageMaker's wire API."""

__version__ = "0.1.0"
