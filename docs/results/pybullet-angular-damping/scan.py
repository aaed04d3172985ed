"""PyBullet push turns with the block's angular damping patched in (issue 10).

Does the block over-turn on PyBullet because it keeps turning on its momentum? Bullet damps
every body's angular velocity (default 0.04); this sets the free objects' links to DAMPING
and prints the centre push's yaw for tasks 0-4 (`envs.checks.turns`).

Usage: python docs/results/pybullet-angular-damping/scan.py DAMPING
"""

from __future__ import annotations

import json
import sys

import pybullet as p

from envs import checks
from envs.pybullet import backend


def patch(damping: float) -> None:
    build = backend.PybulletBackend._build_object

    def build_damped(self, obj, frictions):
        body = build(self, obj, frictions)
        if obj.free:
            for link in [-1, *body.links.values()]:
                self._call(p.changeDynamics, body.uid, link, angularDamping=damping)
        return body

    backend.PybulletBackend._build_object = build_damped


if __name__ == "__main__":
    damping = float(sys.argv[1])
    patch(damping)
    print(json.dumps({"angular_damping": damping, **checks.turns("pybullet")}))
