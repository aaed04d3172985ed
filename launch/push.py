"""Compare continual-learning methods on the push task sequence, then write the report.

    python launch/push.py --methods hnet,finetune,coreset --seeds 0,1,2 --profile quick
"""

import sys

from hypercrl.cli import launch_main

if __name__ == "__main__":
    sys.exit(launch_main("push"))
