"""Replies understood: each inbound reply's intent, confidence and fields, from OpenAI or the local rules.

``classify.classify_reply`` is the entry (opt-out words first); ``record.record_classification``
writes its audit row. ``intents`` holds the vocabulary, ``local`` the no-network classifier,
``openai_classifier`` the model path, ``dates`` and ``text`` what both read a reply with.
"""
