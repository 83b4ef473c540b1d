"""Twilio: message and call status callbacks and inbound texts, signed with the organization's Auth Token."""
