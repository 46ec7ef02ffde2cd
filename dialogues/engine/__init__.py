"""The SOTOPIA-Ω method as pure, async Python: no Django imports anywhere under this package."""
