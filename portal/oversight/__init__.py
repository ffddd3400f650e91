"""Panel oversight: the audit trail, dashboards and exports."""
