"""The kiosk's brain: dialog state machine, domain services, storage and ports."""
