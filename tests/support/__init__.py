"""Helpers the tests share: servers, databases, tokens and factories."""
