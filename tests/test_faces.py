"""Every package's public face: an ``__all__`` naming what users import, and every name in it
importable from the package (a face that lists a name it cannot give fails here)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import agora

PACKAGES = sorted(info.name for info in pkgutil.walk_packages(agora.__path__, "agora.") if info.ispkg)


def test_the_faces_are_the_packages_we_ship() -> None:
    assert {
        "agora.agents",
        "agora.agents.ray",
        "agora.agents.roles",
        "agora.chain",
        "agora.economy",
        "agora.gateway",
        "agora.simulations",
        "agora.tasks",
    } <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_names_its_face_and_gives_every_name(name: str) -> None:
    package = importlib.import_module(name)
    face = getattr(package, "__all__", None)
    assert face, f"{name} has no __all__"
    assert len(face) == len(set(face)), f"{name}.__all__ names something twice"
    missing = [n for n in face if not hasattr(package, n)]
    assert missing == [], f"{name}.__all__ names what it cannot give: {missing}"
