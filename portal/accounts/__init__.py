"""Accounts: users and roles, sign-in sessions, invitations."""
