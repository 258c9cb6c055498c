"""Notifications: the SNS API subset (topics, HTTP(S) subscriptions, Publish) and delivery."""
