"""Seeded simulation of a farming landscape and its Sentinel-2 L2A-like scenes.

``simulate_region`` writes field polygons with practice labels and one year of
Sentinel-2 L2A-like band files; see ``docs/simulator.md`` for what is simulated,
the physical assumptions and their sources.
"""

from regenmap.geo.simulate.region import SimulatedRegion, simulate_region

__all__ = ["SimulatedRegion", "simulate_region"]
