"""Reading email senders' mailboxes over IMAP: replies and bounces that never reach the inbound hook."""
