"""The command-line programs: ``python train.py`` in a checkout, ``drivseg-train`` once installed.

Each module has ``main(argv=None) -> int`` (what the tests and other programs call) and ``run()``,
the console command that prints user errors as one line (``drivseg.entry.run_entry_point``).
"""
