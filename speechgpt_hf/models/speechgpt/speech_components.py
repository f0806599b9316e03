"""The unit tokenizer and vocoder a SpeechGPTProcessor uses: attached as objects, or named by pointers to their repos
and loaded on first use, so that a processor used for its text tokenizer alone never loads speech weights."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from transformers.utils import CONFIG_NAME

from .component_paths import local_folder, portable_path, resolve_pointer

# The speech components: processor attribute -> the processor_config.json (and config.json) field naming its repo.
COMPONENT_POINTERS = {"audio_tokenizer": "unit_tokenizer_repo", "vocoder": "vocoder_repo"}
_COMPONENT_OF = {field: name for name, field in COMPONENT_POINTERS.items()}
# What each component is, and the method the processor calls on it.
COMPONENT_CLASSES = {"audio_tokenizer": "SpeechUnitTokenizer", "vocoder": "UnitHiFiGANVocoder"}
COMPONENT_METHODS = {"audio_tokenizer": "encode", "vocoder": "synthesize"}
# The kwargs of the processor's `from_pretrained` that also apply to loading the components from their own repos
# (`revision` and `subfolder` name places in the processor's repo, not in theirs).
COMPONENT_LOAD_KWARGS = ("cache_dir", "force_download", "proxies", "token", "local_files_only")
# The kwargs that locate the processor's own files, used to find its folder and the model config beside it.
_REPO_KWARGS = (*COMPONENT_LOAD_KWARGS, "revision", "subfolder")


@dataclass(frozen=True)
class Pointer:
    """A component's repo as stored (`value`: a Hub id, or a folder maybe relative to the folder that stored it),
    with `resolve`, which gives the repo id or folder to load; resolving waits until the component is needed."""

    value: str
    resolve: Callable[[], str | None]

    def location(self) -> str | None:
        return self.resolve()


def stored_pointer(field: str, value: str, folder: Path | None) -> Pointer:
    """A pointer read from the file of `folder` (relative values are relative to it)."""
    return Pointer(value, partial(resolve_pointer, field, value, folder))


def model_config_beside(name_or_path: str, **kwargs: Any) -> tuple[Any, Path] | None:
    """The SpeechGPT model config of the same repo or folder as a processor, with the (absolute) folder it was read
    from; None when there is no such config."""
    from transformers.utils import cached_file

    found = cached_file(
        name_or_path,
        CONFIG_NAME,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **_repo_kwargs(kwargs),
    )
    if found is None or json.loads(Path(found).read_text()).get("model_type") != "speechgpt":
        return None
    from .configuration_speechgpt import SpeechGPTConfig

    folder = Path(found).parent.resolve()  # absolute: the pointers are resolved later, maybe from another directory
    return SpeechGPTConfig.from_pretrained(folder), folder


def config_pointers(name_or_path: str, **kwargs: Any) -> dict[str, Pointer]:
    """The component pointers that the SpeechGPT model config of the same repo or folder names (none when it has no
    such config), resolved as the config resolves them, so relative paths work."""
    beside = model_config_beside(name_or_path, **kwargs)
    if beside is None:
        return {}
    config, folder = beside
    return {
        field: Pointer(getattr(config, field), partial(config.resolve_component_path, field, model_dir=folder))
        for field in COMPONENT_POINTERS.values()
        if getattr(config, field, None)
    }


def repo_pointers(processor_dict: dict[str, Any], name_or_path: str, **kwargs: Any) -> dict[str, Pointer]:
    """The pointers of a saved processor (taken out of `processor_dict`), relative ones resolved against its folder;
    a component it does not name is taken from the model config beside it."""
    values = {field: processor_dict.pop(field, None) for field in COMPONENT_POINTERS.values()}
    pointers: dict[str, Pointer] = {}
    if any(values.values()):
        from transformers.utils import PROCESSOR_NAME

        folder = local_folder(name_or_path, PROCESSOR_NAME, **_repo_kwargs(kwargs))
        folder = None if folder is None else folder.resolve()  # absolute, as the pointers are resolved later
        pointers = {field: stored_pointer(field, value, folder) for field, value in values.items() if value}
    if len(pointers) < len(values):
        fallback = config_pointers(name_or_path, **kwargs)
        pointers.update({field: pointer for field, pointer in fallback.items() if field not in pointers})
    return pointers


def _repo_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs[key] for key in _REPO_KWARGS if kwargs.get(key) is not None}


def check_component(name: str, component: Any | None, num_units: int) -> Any | None:
    """`component` if it can serve as the processor's `name` with K=`num_units` units; else a TypeError/ValueError."""
    if component is None:
        return None
    method = COMPONENT_METHODS[name]
    if not callable(getattr(component, method, None)):
        raise TypeError(f"`{name}` has no `{method}` method: give a {COMPONENT_CLASSES[name]}.")
    units = getattr(getattr(component, "config", None), "num_units", num_units)
    if units != num_units:
        raise ValueError(
            f"The {name} has {units} units but this processor has {num_units}: give the "
            f"{COMPONENT_CLASSES[name]} the model was trained with (its config names it)."
        )
    return component


def placed(component: Any | None, device: Any | None) -> Any | None:
    """`component` moved to `device` (a model moves in place); unchanged when either is None or it has no `.to`."""
    if component is None or device is None or not callable(getattr(component, "to", None)):
        return component
    moved = component.to(device)
    return component if moved is None else moved


class SpeechComponents:
    """The processor's unit tokenizer and vocoder. Each is attached (an object, or None for none), or loaded once,
    on first use, from its pointer with `load_kwargs`; attaching one replaces its pointer. With a `device` set
    (see `place`), every component is put there: a GPU LM's speech then runs on its GPU, not on the CPU."""

    def __init__(self, num_units: int) -> None:
        self.num_units = num_units
        self.load_kwargs: dict[str, Any] = {}
        self.device: Any | None = None
        self._attached: dict[str, Any] = {}
        self._pointers: dict[str, Pointer] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def get(self, name: str) -> Any | None:
        """The component `name`, loaded from its pointer the first time it is asked for."""
        if name in self._attached:
            return self._attached[name]
        with self._lock:
            if name not in self._attached:
                pointer = self._pointers.get(COMPONENT_POINTERS[name])
                self._attached[name] = None if pointer is None else self._load(name, pointer)
            return self._attached[name]

    def _load(self, name: str, pointer: Pointer) -> Any:
        from transformers import AutoModel

        component = AutoModel.from_pretrained(pointer.location(), **self.load_kwargs)
        return placed(check_component(name, component, self.num_units), self.device)

    def attach(self, name: str, component: Any | None) -> None:
        """Makes `component` the processor's `name` (None: none), in place of what its pointer names; it is moved
        to the components' device when one is set."""
        self._attached[name] = placed(check_component(name, component, self.num_units), self.device)
        self._pointers.pop(COMPONENT_POINTERS[name], None)

    def place(self, device: Any | None) -> None:
        """Puts the components on `device`: those attached or loaded already now, the others as they load (None
        leaves them where they are and loads the others where `from_pretrained` puts them, the CPU)."""
        self.device = device
        for name, component in self._attached.items():
            self._attached[name] = placed(component, device)

    def point(self, field: str, pointer: Pointer | None) -> None:
        """Names the repo of the component stored as `field`; a component attached or loaded before is dropped."""
        self._attached.pop(_COMPONENT_OF[field], None)
        if pointer is None:
            self._pointers.pop(field, None)
        else:
            self._pointers[field] = pointer

    def point_if_unattached(self, field: str, pointer: Pointer) -> None:
        """`point`, unless the component stored as `field` was attached (given by hand, it wins)."""
        if _COMPONENT_OF[field] not in self._attached:
            self._pointers[field] = pointer

    def location(self, field: str, folder: Path | None = None) -> str | None:
        """The repo id or folder of the component stored as `field`, relative to `folder` when it sits close to it
        (see `portable_path`); a pointer that cannot be resolved is given as it was stored."""
        name = _COMPONENT_OF[field]
        pointer = self._pointers.get(field)
        if pointer is not None:
            try:
                location = pointer.location()
            except (ValueError, OSError):
                return pointer.value
        elif self._attached.get(name) is not None:
            location = getattr(self._attached[name], "name_or_path", None) or None
        else:
            return None
        if location and folder is not None and os.path.isdir(location):
            return portable_path(Path(location), folder)
        return location

    def unnamed(self) -> list[str]:
        """The attached components that have no repo or folder to point to."""
        return [
            name
            for name, component in self._attached.items()
            if component is not None and not getattr(component, "name_or_path", None)
        ]


__all__ = [
    "COMPONENT_CLASSES",
    "COMPONENT_POINTERS",
    "Pointer",
    "SpeechComponents",
    "check_component",
    "config_pointers",
    "model_config_beside",
    "placed",
    "repo_pointers",
    "stored_pointer",
]
