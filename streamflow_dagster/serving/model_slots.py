"""The models the API serves, by registry alias, and the watcher that reloads them.

A loaded model is replaced whole (one attribute assignment), so a request sees either the
old or the new model, never a mix; requests in flight finish on the one they started with.
A version that cannot be loaded (missing artifact, untrusted types, features the service does
not provide) leaves the current one serving and is reported by /ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import reason
from .predict import Scorer
from .split import CHALLENGER, PRODUCTION

log = logging.getLogger("streamflow.serve")


@dataclass(frozen=True)
class LoadedModel:
    alias: str
    version: int
    scorer: Scorer
    loaded_at: float = field(default_factory=time.time)


@dataclass
class SlotState:
    """What /ready reports about one alias."""

    loaded: LoadedModel | None = None
    target_version: int | None = None  # what the alias names in the registry
    error: str | None = None  # why the target is not the loaded version


class ModelSlots:
    """The production model and, during an A/B test, the challenger."""

    def __init__(
        self,
        resolve: Callable[[str], int | None],  # alias -> version (None: alias not set)
        load: Callable[[int], Scorer],  # version -> the fitted model, ready to score
        available_features: Callable[[], list[str] | None],  # None: not known yet
        aliases: dict[str, str],  # variant -> registry alias
    ):
        self._resolve, self._load = resolve, load
        self.available_features = available_features
        self.aliases = aliases
        self.states = {variant: SlotState() for variant in aliases}
        self.registry_error: str | None = None
        self._lock = threading.Lock()  # one refresh at a time (watcher and manual reload)

    def model(self, variant: str) -> LoadedModel | None:
        state = self.states.get(variant)
        return state.loaded if state else None

    def set_challenger(self, alias: str | None) -> None:
        with self._lock:
            if alias is None:
                self.aliases.pop(CHALLENGER, None)
                self.states.pop(CHALLENGER, None)
            elif self.aliases.get(CHALLENGER) != alias:
                self.aliases[CHALLENGER] = alias
                self.states[CHALLENGER] = SlotState()

    def refresh(self) -> list[str]:
        """Load what each alias names now, if it changed; returns what changed, for the log."""
        changes = []
        with self._lock:
            for variant, alias in list(self.aliases.items()):
                state = self.states[variant]
                try:
                    version = self._resolve(alias)
                except Exception as error:  # reported by /ready; the loaded model keeps serving
                    self.registry_error = (
                        f"model registry unreachable: {reason(error, with_type=True)}"
                    )
                    log.warning(self.registry_error)
                    return changes
                self.registry_error = None
                state.target_version = version
                if version is None:
                    state.error = (
                        f"no version of the registered model holds alias {alias!r}: "
                        "promote one (streamflow model promote VERSION, or run a month "
                        "whose model passes its checks)"
                    )
                    continue
                if state.loaded and state.loaded.version == version:
                    state.error = None
                    continue
                try:
                    state.loaded = self._checked_load(alias, version)
                    state.error = None
                    changes.append(f"{variant} model (alias {alias!r}) is now v{version}")
                except Exception as error:  # keep serving the loaded model; /ready says why
                    why = reason(error, with_type=True)
                    state.error = f"cannot load v{version} of alias {alias!r}: {why}"
                    log.error(state.error)
        return changes

    def _checked_load(self, alias: str, version: int) -> LoadedModel:
        scorer = self._load(version)
        features = scorer.features
        available = self.available_features()
        unknown = [name for name in features if available is not None and name not in available]
        if unknown:
            raise ValueError(
                f"the model needs {unknown}, which the feature service does not provide"
            )
        if not hasattr(scorer.model, "predict_proba"):
            raise ValueError("the model has no predict_proba")
        return LoadedModel(alias, version, scorer)


class Watcher:
    """Refreshes the slots every `interval` seconds, or at once when asked."""

    def __init__(self, slots: ModelSlots, interval: float, on_refresh=None):
        self.slots, self.interval = slots, interval
        self._on_refresh = on_refresh  # e.g. this process's model-version gauge
        self._wake, self._stop = threading.Event(), threading.Event()
        # Set once the first refresh is over (loaded, or the reason it could not be): until
        # then "still loading" is the truth; after it, /ready names what is really wrong.
        self.first_refresh_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for change in self.slots.refresh():
                    log.info(f"serving: {change}")
                if self._on_refresh is not None:
                    self._on_refresh()
            finally:
                self.first_refresh_done.set()
            self._wake.wait(self.interval)
            self._wake.clear()


def default_aliases(production_alias: str, challenger_alias: str | None) -> dict[str, str]:
    aliases = {PRODUCTION: production_alias}
    if challenger_alias:
        aliases[CHALLENGER] = challenger_alias
    return aliases
