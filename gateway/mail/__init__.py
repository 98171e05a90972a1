"""E-mail through a transactional outbox: queued with what it tells, delivered by a worker."""
