"""Ethics panel review: submissions, reviewers, conflicts, votes and opinions."""
