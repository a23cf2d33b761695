import sys

try:
    from runner.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python starts: no traceback
    sys.exit(130)

main()
