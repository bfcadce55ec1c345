"""Seeded simulation of a farming landscape and its Sentinel-2 L2A-like scenes."""
