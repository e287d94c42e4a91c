"""`python -m bench`: run every benchmark row and print one markdown table."""

from bench.run_all import main

if __name__ == "__main__":  # the decoder worker processes re-import this module under another name
    raise SystemExit(main())
