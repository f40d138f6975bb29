"""``python -m dse`` — the same as the ``inferbench`` command."""

from dse.cli import main_exit

if __name__ == "__main__":
    main_exit()
