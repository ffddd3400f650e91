"""Comprehension: the patient's answers, and the therapist's teach-back when they struggle."""
