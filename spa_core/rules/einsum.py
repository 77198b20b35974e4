"""Einsum: axes are tied by their subscript letters.

An output letter ties every operand axis carrying it to the output axis (a size-1
operand axis broadcasts and is free). A contracted letter (not in the output) ties the
operand axes carrying it into one channel space that every output reads, as MatMul's
inner axis does; contracted in a single operand it is a sum, where removing an element
equals zeroing it. Ellipses and repeated letters in one term (diagonals) are barriers.
"""

from __future__ import annotations

from .context import RuleBarrier, RuleContext
from .registry import rule


def parse(equation: str, operands: int) -> tuple[list[str], str]:
    """Operand subscripts and output subscripts (the implicit output made explicit)."""
    eq = equation.replace(" ", "")
    if "." in eq:
        raise RuleBarrier("Einsum with an ellipsis")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != operands:
        raise RuleBarrier("Einsum equation does not match its operands")
    if not arrow:  # implicit: letters that appear once, in alphabetical order
        letters = "".join(terms)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term in [*terms, out]:
        if len(set(term)) != len(term):
            raise RuleBarrier("Einsum with a repeated subscript (diagonal)")
    return terms, out


@rule("Einsum", since_version=12)
def einsum(ctx: RuleContext) -> None:
    eq = ctx.attr("equation")
    terms, out = parse(eq.decode() if isinstance(eq, bytes) else str(eq), len(ctx.inputs))
    for i, term in enumerate(terms):
        if len(term) != len(ctx.in_shape(i)):
            raise RuleBarrier("Einsum subscripts do not match an operand's rank")
    for letter in {c for term in terms for c in term}:
        carriers = [(i, term.index(letter)) for i, term in enumerate(terms) if letter in term]
        if letter in out:
            o = ctx.out(0, out.index(letter))
            for i, axis in carriers:
                if ctx.in_shape(i)[axis] == ctx.out_shape(0)[out.index(letter)]:
                    ctx.tie(ctx.inp(i, axis), o)
                else:
                    ctx.free(ctx.inp(i, axis))
            continue
        sized = [(i, axis) for i, axis in carriers if ctx.in_shape(i)[axis] != 1]
        for i, axis in carriers:
            if (i, axis) not in sized:
                ctx.free(ctx.inp(i, axis))
        if len(sized) == 1:
            ctx.free(ctx.inp(*sized[0]))  # a sum over one operand's axis
            continue
        for i, axis in sized:
            ctx.tie(ctx.inp(*sized[0]), ctx.inp(i, axis))
            ctx.reads(i, axis)
