"""A simulated vLLM-compatible model server whose per-item accuracy we plant.

Public API: `SimulatedFleet` (start variants from a YAML file or dict, `.url(name)`),
`load_fleet`, `FleetConfig`, `Variant`. See docs/runner.md.
"""

from quantgate.simulate.config import FleetConfig, Variant, load_fleet
from quantgate.simulate.fleet import SimulatedFleet

__all__ = ["FleetConfig", "SimulatedFleet", "Variant", "load_fleet"]
