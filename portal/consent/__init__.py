"""Consent: documents, the patient's journey, signatures and re-consent."""
