"""Logging set-up shared by every command-line entry point."""
import logging
import sys


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (run.py/slurm.py redirect it to the job's log file)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
