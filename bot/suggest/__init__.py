"""Suggestions: topics a user keeps talking about, their interest profile, and offers."""
