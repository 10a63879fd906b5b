"""The Redis adapters: deployment records (store), state locks and Terraform run records (locks),
encrypted artifacts, the audit trail, the RQ queue, the read-only account analyses, the persistence
marker, and the one place that makes a Redis connection. Imports core/ only; core/ never imports it."""
