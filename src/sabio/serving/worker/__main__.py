"""``python -m sabio.serving.worker``: the model worker without going through the sabio CLI."""

from __future__ import annotations

import argparse
import sys

from sabio.serving.worker.main import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sabio.serving.worker",
        description="Serve one model over the SageMaker hosting container contract.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
