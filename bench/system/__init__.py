"""The pieces of ``bench/bench_system.py``: one benchmark run at every scale (issue 10).

Each module measures one thing and returns plain numbers; ``bench_system.py`` runs them in order
on one corpus, prints the table of ratios and writes the results into docs/benchmarks.md.
"""
