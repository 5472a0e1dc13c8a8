"""The ``expfam`` command: a thin typer shell over :mod:`expfam.experiment.pipeline`.

One module per command (``train``, ``evaluate``, ``plugins``, ``sweep``, ``compare``); :mod:`cli.app`
assembles them and maps every :class:`~expfam.errors.ExpfamError` to a one-line
``error: ...`` on stderr with exit code 2.
"""
