"""Reports of conformance runs, all rendered from one result model (``results.json``).

    results.py   build_results(run_info, cases) -> dict
    run_dir.py   write_run(results, base) -> run dir
    html.py      render(results) -> the self-contained report.html (matrix, ladders, diffs)
    matrix.py    requirement x target compatibility matrix (HTML and Markdown)
    progress.py  Progress: a controller-side pytest plugin printing cases done / total
    sample.py    realistic sample input for tests and demos

The format is documented in ``reports/README.md``. Submodules are imported on use, so the
pytest plugin pays for none of this until a run ends.
"""
