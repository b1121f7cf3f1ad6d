# Actor handles passed around, ActorPool, named actors, generators, cancel.
import json
import sys
import time

ray = __import__(sys.argv[1] if len(sys.argv) > 1 else "ray")
ActorPool = __import__(ray.__name__ + '.util', fromlist=['ActorPool']).ActorPool


@ray.remote
class Stage:
    def __init__(self, factor, downstream=None):
        self.factor = factor
        self.downstream = downstream

    def process(self, x):
        y = x * self.factor
        if self.downstream is not None:
            return ray.get(self.downstream.process.remote(y))
        return y


@ray.remote
def numbers(n):
    for i in range(n):
        yield i * i


@ray.remote
def forever():
    while True:
        time.sleep(0.05)


if __name__ == "__main__":
    ray.init(num_cpus=2)
    last = Stage.options(name="last").remote(10)
    first = Stage.remote(2, ray.get_actor("last"))
    chain = ray.get([first.process.remote(i) for i in range(5)])
    pool = ActorPool([Stage.remote(3), Stage.remote(3)])
    pooled = sorted(pool.map_unordered(lambda a, v: a.process.remote(v), range(6)))
    streamed = [ray.get(r) for r in numbers.options(num_returns="streaming").remote(5)]
    ref = forever.remote()
    ray.cancel(ref)
    try:
        ray.get(ref, timeout=20)
        cancelled = False
    except ray.exceptions.TaskCancelledError:
        cancelled = True
    print("RESULT", json.dumps({"chain": chain, "pooled": pooled, "streamed": streamed,
                                "cancelled": cancelled}))
    ray.shutdown()
