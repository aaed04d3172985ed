"""Benchmarks behind ``hypercrl bench NAME``: each module's ``main(argv)`` prints JSON."""
