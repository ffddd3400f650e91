"""Notifications: messages queued in an outbox with the change that caused them."""
