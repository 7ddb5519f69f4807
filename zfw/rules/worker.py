"""Child process that changes one address family's tables (see zfw.rules.apply).

python -m zfw.rules.worker apply|flush 4|6   < pickled Ruleset
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    import iptc

    from zfw.rules.apply import replace_table

    action, family = sys.argv[1], int(sys.argv[2])
    ruleset = pickle.loads(sys.stdin.buffer.read())
    for name in ("mangle", "filter"):
        new = ruleset.table(family, name) if action == "apply" else None
        replace_table(iptc, family, name, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
