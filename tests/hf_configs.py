"""Configs of every declared Hugging Face model type, drawn from the declarations alone.

An architecture's arguments are drawn from its own declaration (sizes small, flags, choices
and numbers within their rules), made consistent by the architecture (``consistent``), and
limited to what the model type can say (its fixed arguments, the rest at their defaults);
the config is written through the type's declaration (:func:`config_for`), then some
fields are left to the config class's defaults and some spelled as their aliases. The truth
is what ``transformers`` builds from the file, never this module: a field written wrongly
builds another model there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import declared
from shapecalc.core.declare import arguments_of
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.hfmap import HFType, config_for

#: model type -> (architecture command, declaration)
TYPES = declared()


@st.composite
def hf_configs(draw: st.DrawFn, model_type: str) -> dict[str, Any]:
    """A config.json of ``model_type`` that transformers builds: the sizes small, each
    field present or left to its default, the class one of the type's."""
    from shapecalc.architectures import get

    command, t = TYPES[model_type]
    if t.text_type:  # a multimodal type: its language model's config as its text_config
        inner = draw(hf_configs(t.text_type))
        inner = {k: v for k, v in inner.items() if k not in ("model_type", "architectures")}
        config = {"model_type": model_type, "text_config": inner}
        if draw(st.booleans()):
            config["architectures"] = [t.head_class]
        if draw(st.booleans()):
            config["tie_word_embeddings"] = draw(st.booleans())
        return config
    cls = get(command)
    class_name = draw(st.sampled_from(list(t.classes)))
    if t.parts:  # a model made of several: its parts' configs nested as the class writes them
        return draw(_composite_config(cls, t, class_name))
    arguments: dict[str, Any] = {}
    for f, argument in arguments_of(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.name in t.fixed:
            arguments[f.name] = t.fixed[f.name]
        elif f.name in t.classes[class_name]:
            arguments[f.name] = t.classes[class_name][f.name]
        elif f.name not in t.keys and f.name not in t.options and f.name not in t.derived:
            if default is not None or argument.unset is None:
                arguments[f.name] = default
        else:
            arguments[f.name] = draw(_value(f.name, argument, t))
    arguments = cls.consistent(arguments)
    try:
        architecture = cls(**arguments)
    except InvalidArgumentError:
        assume(False)
    reference = config_for(architecture, t)
    assume(reference is not None)
    assert reference is not None
    config: dict[str, Any] = {"model_type": model_type}
    if draw(st.integers(0, 5)):
        config["architectures"] = [class_name]
    else:
        assume(class_name == t.head_class)
    spelled = {canonical: alias for alias, canonical in t.aliases.items()}
    for key, value in reference.config.items():
        if key in t.defaults and t.defaults[key] == value and not draw(st.integers(0, 3)):
            continue  # left to the class's default
        if key in spelled and draw(st.booleans()):
            key = spelled[key]  # the config's other spelling
        config[key] = value
    assume(not reference.options)  # a class keyword no config.json can say
    return config


@st.composite
def _composite_config(draw: st.DrawFn, cls: Any, t: HFType, class_name: str) -> dict[str, Any]:
    """A composite's config: its arguments drawn from its declaration (the class's own
    settings), written by its type (text_config and vision_config); a part that may sit at
    the top level sometimes does, and a part's model type is sometimes left out."""
    from shapecalc.adapters.strategies import configs

    architecture = draw(configs(cls, st.integers(1, 12)))
    settings = t.classes[class_name]
    try:
        architecture = dataclasses.replace(architecture, **settings)
    except InvalidArgumentError:
        assume(False)
    reference = config_for(architecture, t)
    assume(reference is not None)
    assert reference is not None
    config: dict[str, Any] = {"model_type": t.model_type, **reference.config}
    if draw(st.integers(0, 5)):
        config["architectures"] = [class_name]
    else:
        assume(class_name == t.head_class)
    for part in t.all_parts:
        inner = config.get(part.key)
        if not isinstance(inner, dict):
            continue
        if draw(st.booleans()):
            inner = {"model_type": part.types[0], **inner}
        if part.flat and draw(st.booleans()):
            del config[part.key]
            config.update(inner)
            config.pop("model_type")
            config["model_type"] = t.model_type
        else:
            config[part.key] = inner
    return config


def _value(name: str, argument: Any, t: HFType) -> st.SearchStrategy[Any]:
    if argument.kind == "size":
        small = st.integers(max(argument.minimum, 1), 12)
        if argument.unset is not None:
            return small
        unkeyed = name not in t.keys  # a derived argument (a nested config's)
        return (
            st.one_of(st.none(), small) if unkeyed or t.defaults.get(t.key(name)) is None else small
        )
    if argument.kind == "flag":
        return st.booleans()
    if argument.kind == "indices":
        return st.lists(st.integers(0, 5), max_size=3).map(tuple)
    if argument.kind == "kinds":  # a pattern the layers repeat (the family checks its length)
        return st.lists(st.sampled_from(argument.options), min_size=1, max_size=3).map(tuple)
    if argument.kind == "choice":
        options = argument.options
        if name in t.values:
            options = tuple(dict.fromkeys(t.values[name].values()))
        return st.sampled_from(options)
    low = max(argument.low, 0.0)
    high = min(argument.high, 1.0)
    return st.sampled_from(
        sorted({low, (low + high) / 2, high - (0.001 if argument.open_high else 0)})
    )
