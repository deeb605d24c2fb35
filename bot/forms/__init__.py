"""Slot-filling forms: declarative forms, a pure state machine, extractors, carry-over, stage."""
