"""voice2fa: phone number verification by voice call."""
