"""``expfam plugins`` lists every registered component with its provider."""

from __future__ import annotations


def test_plugins_lists_every_kind_with_providers(runner, app):
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    sections: dict[str, list[str]] = {}
    for line in lines:
        if not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        else:
            current.append(line.split()[0])
    assert sections["families"] == ["bernoulli", "binomial", "categorical", "normal", "poisson"]
    assert sections["interaction blocks"] == ["xk", "xy", "xyk"]
    assert sections["block sets"] == ["full", "hierarchical"]
    assert sections["objectives"] == [
        "conjugation",
        "elbo",
        "posterior_entropy",
        "prior_entropy",
        "rao_blackwell_elbo",
        "recognition_conjugation",
    ]
    assert {"digits", "idx", "npz", "openml", "mnist", "fashion-mnist"} <= set(sections["datasets"])
    assert "full  " in result.stdout and "= xy + xyk + xk" in result.stdout
    assert all("expfam (" in line for line in lines if line.startswith("  "))


def test_help_lists_the_registered_choices(runner, app):
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Block set (full, hierarchical)" in text and "block names (xk, xy, xyk)" in text
    assert "normal, poisson" in text and "--posterior-entropy-weight" in text and "--overwrite" in text
