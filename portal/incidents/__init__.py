"""Therapist boundary incidents: confidential reports straight to the ethics panel."""
