"""The model's classes write their repr() and == once (model.Record) instead of having
dataclasses generate them: they must behave exactly as the generated ones would."""

from __future__ import annotations

import copy
import dataclasses

import pytest

import dispatch_kernel as dk
from dispatch_kernel import model


def _copy_field_defs(cls: type) -> list[tuple[str, object, dataclasses.Field]]:
    """The fields of `cls`, for dataclasses to make the same class with repr and eq generated."""
    out = []
    for f in dataclasses.fields(cls):
        kwargs = {"repr": f.repr, "compare": f.compare}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs["default_factory"] = f.default_factory
        out.append((f.name, f.type, dataclasses.field(**kwargs)))
    return out


def _example(cls: type):
    fixed = {"id": "x", "created": 1.0, "modified": 2.0, "created_by": "u", "updated_by": "u", "queued": 1.0}
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name: f"{f.name}-value" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    return {**required, **{k: v for k, v in fixed.items() if k in names}}


CLASSES = [model.Function, model.Secret, model.BaseImage, model.Image, model.Run, model.RunFailure, model.Scaling,
           dk.Api, dk.Subscription, dk.EventSource, dk.Organization, dk.ServiceAccount, dk.Policy]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_repr_and_equality_are_the_ones_dataclasses_would_generate(cls):
    generated = dataclasses.make_dataclass(cls.__name__, _copy_field_defs(cls))
    values = _example(cls)
    ours, theirs = cls(**values), generated(**values)
    assert repr(ours) == repr(theirs)
    assert ours == copy.deepcopy(ours) and theirs == copy.deepcopy(theirs)
    changed = next(name for name, _, f in _copy_field_defs(cls) if f.compare)
    other = cls(**{**values, changed: "something else"})
    assert (ours == other) == (theirs == generated(**{**values, changed: "something else"})) is False
    assert ours != theirs  # another class, as between two dataclasses
    with pytest.raises(TypeError):
        hash(ours)
