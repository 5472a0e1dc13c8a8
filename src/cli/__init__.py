"""The `expfam` command: a thin typer shell over [`expfam.experiment`][expfam.experiment].

One module per command (`train`, `evaluate`, `plugins`, `sweep`, `compare`); [`cli.app`][cli.app]
assembles them and maps every [`ExpfamError`][expfam.errors.ExpfamError] to a one-line
`error: ...` on stderr with exit code 2.
"""
