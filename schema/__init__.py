"""The one definition of the database schema and settings shared by both services."""
