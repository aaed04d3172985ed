"""HyperCRL: continual model-based RL with task-conditioned hypernetworks.

The learning library: torch only, never a simulator. The public entry point is
:class:`hypercrl.ContinualDynamics`.
"""

from hypercrl.api import ContinualDynamics

__all__ = ["ContinualDynamics"]
__version__ = "0.1.0"
