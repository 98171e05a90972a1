"""The Context a resolver receives: the request's state (gateway/context.py) and its loaders."""

from __future__ import annotations

from gateway.context import RequestContext
from resolvers.loaders import Loaders


class Context(RequestContext):
    """Built per request by the app; GraphQL fields and REST handlers both receive it. The
    loaders are typed here, a layer above the request's state, so mypy checks every use."""

    _loaders: Loaders | None = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self)
        return self._loaders

    def reset_loaders(self) -> None:
        """Forget cached loads, e.g. after a mutation changed what they returned."""
        self._release_loaders()

    def _release_loaders(self) -> None:
        # Loaders, their batch closures and their cached futures refer to each other: emptied
        # here, a request's rows are freed by reference counting when it ends instead of
        # waiting for (and lengthening) the cyclic garbage collector's passes.
        if self._loaders is not None:
            self._loaders.release()
            self._loaders = None

    async def close(self) -> None:
        self._release_loaders()
        await super().close()
