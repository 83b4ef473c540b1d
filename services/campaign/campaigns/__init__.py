"""Campaigns, steps, enrollments, the ledger read side, analytics and schedules."""
