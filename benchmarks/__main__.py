"""`python -m benchmarks`: every side-by-side benchmark that can run here, one speed table."""

import sys

from benchmarks import speed_table

if __name__ == '__main__':
  sys.exit(speed_table.main())
