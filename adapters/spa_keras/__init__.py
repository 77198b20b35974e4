"""SPA adapter package."""
