"""Channel adapters: email over SMTP, SMS and voicemail over Twilio, and local stand-ins."""
