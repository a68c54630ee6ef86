"""The methods the efficacy bench trains: each rrhf loss and TRL peer by name, the -betaB, -sftW, -anchorA
variants that place a method on the reward-drift frontier, and -written, which limits the SFT term to the best
answers of a task's written source."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from stages.train.losses.catalog import DEFAULTS


@dataclass(frozen=True)
class Method:
    """How a method trains: `rrhf train --loss NAME FLAGS` on the listwise file, or a TRL peer on best-worst pairs;
    beta None is the method's own default."""

    kind: str  # "loss" or "peer"
    name: str
    flags: tuple[str, ...] = ()
    beta: float | None = None
    written: bool = False  # --sft-sources the task's written answers' source


METHODS = {"rrhf": Method("loss", "rrhf"), "pro": Method("loss", "pro"), "listmle": Method("loss", "listmle"),
           "lipo": Method("loss", "lipo"), "dpo": Method("loss", "dpo"), "simpo": Method("loss", "simpo"),
           # SimPO's loss plus the NLL of the best answer, at SimPO's own beta and gamma (CPO-SimPO runs TRL's).
           "simpo-sft": Method("loss", "simpo", ("--sft-weight", "1")),
           "trl-dpo": Method("peer", "dpo"), "trl-simpo": Method("peer", "simpo")}
NEEDS_REFERENCE = {"dpo", "listmle", "lipo"}
NUMBER = r"\d+(?:\.\d+)?"
VARIANT = re.compile(rf"(?P<base>.+?)(?:-beta(?P<beta>{NUMBER}))?(?:-sft(?P<sft>{NUMBER}))?"
                     rf"(?:-anchor(?P<anchor>{NUMBER}))?(?P<written>-written)?")


def parse_method(name: str) -> Method:
    """The method `name` names: one of METHODS, optionally with -betaB (that beta: DPO's, and the knob on drift
    each paper gives) then, for an rrhf loss, -sftW (`--sft-weight W`) and -anchorA (`--anchor-weight A`), to
    measure points on the reward-drift frontier, and last -written (`--sft-sources` the task's written source).

    >>> parse_method("simpo-sft0.3")
    Method(kind='loss', name='simpo', flags=('--sft-weight', '0.3'), beta=None, written=False)
    >>> parse_method("trl-dpo-beta0.5")
    Method(kind='peer', name='dpo', flags=(), beta=0.5, written=False)
    >>> parse_method("lipo-beta1-sft0.5-anchor0.3")
    Method(kind='loss', name='lipo', flags=('--sft-weight', '0.5', '--anchor-weight', '0.3'), beta=1.0, written=False)
    >>> parse_method("lipo-written")
    Method(kind='loss', name='lipo', flags=(), beta=None, written=True)
    >>> parse_method("simpo-sft") == METHODS["simpo-sft"] and parse_method("trl-dpo").kind == "peer"
    True
    >>> parse_method("trl-dpo-sft0.3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: no method trl-dpo-sft0.3: give one of rrhf, pro, ..., with -betaB and (rrhf's losses) -sftW, ...
    >>> parse_method("pro-beta1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: no method pro-beta1: --loss pro has no beta
    """
    variant = VARIANT.fullmatch(name)
    assert variant is not None  # the base alone always matches
    method = METHODS.get(variant["base"])
    ours = any(variant[part] is not None for part in ("sft", "anchor", "written"))  # rrhf train's own options
    if method is None or (ours and (method.kind != "loss" or method.flags)):
        raise ValueError(f"no method {name}: give one of {', '.join(METHODS)}, with -betaB and (rrhf's losses) "
                         "-sftW, -anchorA, -written")
    if variant["beta"] is not None and method.kind == "loss" and DEFAULTS[method.name].beta is None:
        raise ValueError(f"no method {name}: --loss {method.name} has no beta")
    flags = ("--sft-weight", variant["sft"]) if variant["sft"] is not None else method.flags
    flags += ("--anchor-weight", variant["anchor"]) if variant["anchor"] is not None else ()
    return replace(method, flags=flags, beta=float(variant["beta"]) if variant["beta"] is not None else None,
                   written=variant["written"] is not None)
