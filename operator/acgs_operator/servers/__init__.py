"""HTTP servers the operator runs besides kopf's: the progress endpoint trainers report to."""
