# Map/reduce with nested refs, wait loops, multiple returns and ray.method.
import sys
from collections import Counter

ray = __import__(sys.argv[1] if len(sys.argv) > 1 else "ray")

TEXT = ["the quick brown fox", "jumps over the lazy dog", "the end"] * 20


@ray.remote(num_returns=2)
def split_words(line):
    words = line.split()
    return [w for w in words if w < "m"], [w for w in words if w >= "m"]


@ray.remote
def count(*chunks):
    c = Counter()
    for chunk in chunks:
        c.update(chunk)
    return dict(c)


@ray.remote
class Collector:
    def __init__(self):
        self.total = Counter()

    @ray.method(num_returns=2)
    def add(self, partial):
        self.total.update(partial)
        return len(self.total), sum(self.total.values())

    def result(self):
        return dict(self.total)


@ray.remote
def gather_nested(refs):
    # refs arrive as a list of ObjectRefs (nested, not resolved)
    return sum(len(ray.get(r)) for r in refs)


if __name__ == "__main__":
    ray.init(num_cpus=2)
    lows, highs = zip(*[split_words.remote(line) for line in TEXT], strict=False)
    partials = [count.remote(*lows), count.remote(*highs)]
    collector = Collector.remote()
    pending = list(partials)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        collector.add.remote(ray.get(ready[0]))
    total = ray.get(collector.result.remote())
    nested = ray.get(gather_nested.remote(list(lows)))
    try:
        ray.get(count.remote(5))
    except ray.exceptions.RayTaskError as err:
        kind = "task-error" if isinstance(err, TypeError) else "wrong-type"
    print("RESULT", total["the"], sum(total.values()), nested, kind)
    ray.shutdown()
