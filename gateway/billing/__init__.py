"""Money: the ledger, payment providers (stripe, sandbox) and provider webhooks."""
