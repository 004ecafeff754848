"""``python -m shapecalc``: the same as the ``shapecalc`` command."""

from shapecalc.cli import main

if __name__ == "__main__":
    main()
