"""The inbox: each lead's conversation across email and SMS, its read state and assignment."""
