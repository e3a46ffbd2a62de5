"""`python -m mfrbench` is the same as the `mfrbench` command."""

from mfrbench.cli import main

if __name__ == "__main__":
    main()
