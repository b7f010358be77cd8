"""Fault matrix: runs the module under faults and bad input and checks that nothing is lost.

``python3 -m reliability`` prints the table; ``tests/test_fault_matrix.py`` and
``tests/test_process_faults.py`` run the same cases in the suite (reduced size).
"""
