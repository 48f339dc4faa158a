"""`python -m oec ...` is the `oec` command: the entry `accelerate launch -m oec train ...` needs."""

from oec.cli import main

if __name__ == "__main__":
    main()
